//! Why a token was refused. Each reason has a stable code: it goes into JSON error
//! bodies, the access log and the `auth failures by reason` metric.

/// A token could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("algorithm not accepted: {0}")]
    AlgorithmNotAllowed(String),
    #[error("no key for this token: {0}")]
    UnknownKey(String),
    #[error("the signing keys could not be loaded: {0}")]
    KeysUnavailable(String),
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's issuer (iss) is not the one this server accepts")]
    WrongIssuer,
    #[error("the token's audience (aud) does not include this server")]
    WrongAudience,
    #[error("the token lacks the required claim {0:?}")]
    MissingClaim(String),
    #[error("no identity in the token: {0}")]
    NoIdentity(String),
}

impl AuthError {
    /// Every reason, in a fixed order (metrics pre-register one series per code).
    pub const CODES: [&'static str; 12] = [
        "missing_token",
        "malformed_token",
        "algorithm_not_allowed",
        "unknown_key",
        "keys_unavailable",
        "bad_signature",
        "expired_token",
        "token_not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "missing_claim",
        "no_identity",
    ];

    /// The stable code for this reason.
    pub fn code(&self) -> &'static str {
        let i = match self {
            AuthError::Missing => 0,
            AuthError::Malformed(_) => 1,
            AuthError::AlgorithmNotAllowed(_) => 2,
            AuthError::UnknownKey(_) => 3,
            AuthError::KeysUnavailable(_) => 4,
            AuthError::BadSignature => 5,
            AuthError::Expired => 6,
            AuthError::NotYetValid => 7,
            AuthError::WrongIssuer => 8,
            AuthError::WrongAudience => 9,
            AuthError::MissingClaim(_) => 10,
            AuthError::NoIdentity(_) => 11,
        };
        Self::CODES[i]
    }

    /// Maps jsonwebtoken's failure kinds onto our reasons.
    pub(crate) fn from_jwt(e: &jsonwebtoken::errors::Error) -> AuthError {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => AuthError::BadSignature,
            K::ExpiredSignature => AuthError::Expired,
            K::ImmatureSignature => AuthError::NotYetValid,
            K::InvalidIssuer => AuthError::WrongIssuer,
            K::InvalidAudience => AuthError::WrongAudience,
            K::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
                AuthError::AlgorithmNotAllowed(e.to_string())
            }
            K::InvalidEcdsaKey | K::InvalidEddsaKey | K::InvalidRsaKey(_) | K::InvalidKeyFormat => {
                AuthError::KeysUnavailable(e.to_string())
            }
            _ => AuthError::Malformed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_code() {
        let all = [
            AuthError::Missing,
            AuthError::Malformed(String::new()),
            AuthError::AlgorithmNotAllowed(String::new()),
            AuthError::UnknownKey(String::new()),
            AuthError::KeysUnavailable(String::new()),
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongIssuer,
            AuthError::WrongAudience,
            AuthError::MissingClaim(String::new()),
            AuthError::NoIdentity(String::new()),
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(AuthError::code).collect();
        assert_eq!(codes.len(), AuthError::CODES.len());
    }
}
