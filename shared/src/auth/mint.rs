//! Minting HS256 tokens: `nocrd9 dev`'s token, and tests. Production tokens come from an
//! identity provider.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::verifier::now_secs;

/// An HS256 token with these claims.
pub fn hs256(secret: &[u8], claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// Claims for `sub`, valid from now for `ttl_secs`.
pub fn claims_for(sub: &str, ttl_secs: u64) -> Value {
    let now = now_secs();
    json!({"sub": sub, "iat": now, "exp": now + ttl_secs})
}
