//! JWT authentication, shared by control and the gateway so a token means the same to
//! both: the flags (`args`), verification with HS256 / PEM / JWKS keys (`verifier`,
//! `jwks`), the verified-token cache (`cache`), the identity claim (`claim_path`) and
//! the HTTP side — where tokens are found and how 401s point at the metadata (`http`).

mod args;
mod cache;
mod claim_path;
mod error;
pub mod http;
mod jwks;
pub mod mint;
mod verifier;

use std::sync::Arc;

pub use args::AuthArgs;
pub use cache::TokenCache;
pub use claim_path::ClaimPath;
pub use error::AuthError;
pub use verifier::{Verifier, VerifierConfig};

/// Who a verified token says the caller is, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The identity claim (`AUTH_SUB_JSONPATH`), compared with a workspace's owner.
    pub sub: Arc<str>,
    /// The token's `exp` (Unix seconds).
    pub expires_at: u64,
    /// The token carries the administrators' claim value (`AUTH_ADMIN_JSONPATH` /
    /// `AUTH_ADMIN_VALUE`, when configured). Control decides roles; the gateway ignores it.
    pub admin_claim: bool,
}

impl Identity {
    /// An identity with no admin claim (tests, `nocrd9 dev`).
    pub fn user(sub: &str, expires_at: u64) -> Identity {
        Identity {
            sub: sub.into(),
            expires_at,
            admin_claim: false,
        }
    }
}

/// Where an administrators' claim is, and the value that makes a token an admin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminClaim {
    pub path: ClaimPath,
    pub value: String,
}
