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
}
