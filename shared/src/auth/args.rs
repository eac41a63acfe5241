//! The auth flags and environment variables, identical for `nocrd9` and
//! `nocrd9-gateway` (one definition, flattened into both CLIs).

use std::sync::Arc;
use std::time::Duration;

use super::verifier::{Verifier, VerifierConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Require a valid JWT (workspace tools then act for the token's identity).
    #[arg(long = "auth-enabled", env = "AUTH_ENABLED")]
    pub enabled: bool,
    /// HS256 shared secret (at least 32 bytes).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// RS*/PS*/ES*/EdDSA public key: PEM text, or a path to a PEM file.
    #[arg(long, env = "JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,
    /// URL of the identity provider's key set (https://, http:// or file://).
    #[arg(long, env = "JWKS_URI")]
    pub jwks_uri: Option<String>,
    /// Where the identity is in the token's claims.
    #[arg(long, env = "AUTH_SUB_JSONPATH", default_value = "$.sub")]
    pub auth_sub_jsonpath: String,
    /// Required `iss` of every token (and advertised in the protected-resource metadata).
    #[arg(long, env = "AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// Accepted `aud` values, comma-separated (required in tokens when set).
    #[arg(long, env = "AUTH_AUDIENCE", value_delimiter = ',')]
    pub auth_audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[arg(long, env = "AUTH_LEEWAY_SECONDS", default_value_t = 30)]
    pub auth_leeway_seconds: u64,
    /// Verified tokens remembered until they expire (0 turns the cache off).
    #[arg(long, env = "AUTH_TOKEN_CACHE_SIZE", default_value_t = 10_000)]
    pub auth_token_cache_size: usize,
    /// How often the JWKS is refetched in the background, in seconds.
    #[arg(long, env = "JWKS_REFRESH_SECONDS", default_value_t = 300)]
    pub jwks_refresh_seconds: u64,
    /// Least time between two refetches caused by an unknown `kid`, in seconds.
    #[arg(long, env = "JWKS_MIN_REFETCH_SECONDS", default_value_t = 10)]
    pub jwks_min_refetch_seconds: u64,
}

impl Default for AuthArgs {
    /// Auth off, every other setting at its flag's default.
    fn default() -> Self {
        AuthArgs {
            enabled: false,
            jwt_secret: None,
            jwt_public_key: None,
            jwks_uri: None,
            auth_sub_jsonpath: "$.sub".into(),
            auth_issuer: None,
            auth_audience: Vec::new(),
            auth_leeway_seconds: 30,
            auth_token_cache_size: 10_000,
            jwks_refresh_seconds: 300,
            jwks_min_refetch_seconds: 10,
        }
    }
}

impl AuthArgs {
    /// Auth on with an HS256 secret (`nocrd9 dev`, tests).
    pub fn hs256(secret: &str) -> AuthArgs {
        AuthArgs {
            enabled: true,
            jwt_secret: Some(secret.to_string()),
            ..AuthArgs::default()
        }
    }

    /// The verifier when auth is on, `None` when off; every problem at once otherwise.
    pub fn build(&self) -> Result<Option<Arc<Verifier>>, Vec<String>> {
        self.build_with(None)
    }

    /// [`AuthArgs::build`], the verifier also telling which tokens carry `admin_claim`.
    pub fn build_with(
        &self,
        admin_claim: Option<super::AdminClaim>,
    ) -> Result<Option<Arc<Verifier>>, Vec<String>> {
        if !self.enabled {
            return Ok(None);
        }
        let public_key_pem = match self.jwt_public_key.as_deref() {
            None => None,
            Some(v) if v.trim_start().starts_with("-----BEGIN") => Some(v.to_string()),
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                vec![format!(
                    "JWT_PUBLIC_KEY {path:?} is neither PEM text nor a readable file: {e}"
                )]
            })?),
        };
        Verifier::new(VerifierConfig {
            secret: self.jwt_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            public_key_pem,
            jwks_uri: self.jwks_uri.clone(),
            sub_path: Some(self.auth_sub_jsonpath.clone()),
            issuer: self.auth_issuer.clone(),
            audience: self.auth_audience.clone(),
            leeway_secs: self.auth_leeway_seconds,
            cache_size: self.auth_token_cache_size,
            jwks_refresh: Duration::from_secs(self.jwks_refresh_seconds.max(1)),
            jwks_min_refetch: Duration::from_secs(self.jwks_min_refetch_seconds),
            admin_claim,
        })
        .map(|v| Some(Arc::new(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthArgs,
    }

    fn parse(args: &[&str]) -> AuthArgs {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"))
            .auth
    }

    #[test]
    fn off_by_default_and_every_problem_reported_when_on() {
        assert!(
            parse(&[])
                .build()
                .unwrap_or_else(|e| panic!("{e:?}"))
                .is_none()
        );
        let problems = parse(&[
            "--auth-enabled",
            "--jwt-secret",
            "short",
            "--jwks-uri",
            "ftp://x",
            "--auth-sub-jsonpath",
            "sub",
        ])
        .build()
        .err()
        .unwrap_or_default();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let none = parse(&["--auth-enabled"]).build().err().unwrap_or_default();
        assert!(none[0].contains("needs a key"), "{none:?}");
        let missing = parse(&["--auth-enabled", "--jwt-public-key", "/nonexistent/key.pem"])
            .build()
            .err()
            .unwrap_or_default();
        assert!(missing[0].contains("/nonexistent/key.pem"), "{missing:?}");
        let bad_pem = parse(&[
            "--auth-enabled",
            "--jwt-public-key=-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        ])
        .build()
        .err()
        .unwrap_or_default();
        assert!(bad_pem[0].contains("not a PEM"), "{bad_pem:?}");
    }

    #[test]
    fn default_matches_the_flag_defaults() {
        let parsed = parse(&[]);
        let d = AuthArgs::default();
        assert_eq!(format!("{parsed:?}"), format!("{d:?}"));
    }

    #[test]
    fn audience_is_a_comma_list() {
        let a = parse(&["--auth-audience", "gw,https://mcp.example"]);
        assert_eq!(a.auth_audience, ["gw", "https://mcp.example"]);
    }
}
