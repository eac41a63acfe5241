//! `Verifier`: a token in, an identity out. The key is chosen by the server's
//! configuration and the algorithm's family, never by the token alone: `alg: none` is
//! refused, an HS256 token is checked only against `JWT_SECRET` (so a public key cannot
//! be abused as an HMAC secret), and a JWKS key's own `alg` pins the algorithm.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::cache::TokenCache;
use super::claim_path::ClaimPath;
use super::jwks::Jwks;
use super::{AuthError, Identity};

/// How a verifier is set up (built from `AuthArgs`, or directly by tests and `dev`).
#[derive(Clone, Default)]
pub struct VerifierConfig {
    pub secret: Option<Vec<u8>>,
    /// PEM text of an RSA, EC or Ed25519 public key.
    pub public_key_pem: Option<String>,
    pub jwks_uri: Option<String>,
    pub sub_path: Option<String>,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub leeway_secs: u64,
    pub cache_size: usize,
    pub jwks_refresh: Duration,
    pub jwks_min_refetch: Duration,
    /// Where the administrators' claim is (control only).
    pub admin_claim: Option<super::AdminClaim>,
}

pub struct Verifier {
    secret: Option<DecodingKey>,
    public: Option<DecodingKey>,
    jwks: Option<Jwks>,
    sub_path: ClaimPath,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: u64,
    cache: TokenCache,
    jwks_refresh: Duration,
    admin_claim: Option<super::AdminClaim>,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// Checks the configuration, reporting every problem at once.
    pub fn new(cfg: VerifierConfig) -> Result<Verifier, Vec<String>> {
        let mut problems = Vec::new();
        if cfg.secret.is_none() && cfg.public_key_pem.is_none() && cfg.jwks_uri.is_none() {
            problems.push(
                "AUTH_ENABLED needs a key: JWT_SECRET (HS256), JWT_PUBLIC_KEY (RS/ES/EdDSA PEM) or JWKS_URI"
                    .to_string(),
            );
        }
        let secret = cfg.secret.as_ref().and_then(|s| {
            if s.len() < 32 {
                problems.push(format!(
                    "JWT_SECRET is {} bytes; HS256 needs at least 32 (RFC 7518 §3.2)",
                    s.len()
                ));
                None
            } else {
                Some(DecodingKey::from_secret(s))
            }
        });
        let public = cfg
            .public_key_pem
            .as_deref()
            .and_then(|pem| match parse_public_pem(pem) {
                Ok(k) => Some(k),
                Err(e) => {
                    problems.push(e);
                    None
                }
            });
        let jwks = cfg.jwks_uri.as_ref().and_then(|uri| {
            let scheme_ok = ["https://", "http://", "file://"]
                .iter()
                .any(|s| uri.starts_with(s));
            if !scheme_ok {
                problems.push(format!(
                    "JWKS_URI {uri:?} must be an https://, http:// or file:// URL"
                ));
                return None;
            }
            Jwks::new(uri.clone(), cfg.jwks_min_refetch)
                .map_err(|e| problems.push(e))
                .ok()
        });
        let sub_path = ClaimPath::parse(cfg.sub_path.as_deref().unwrap_or("$.sub"))
            .map_err(|e| problems.push(e))
            .ok();
        if !problems.is_empty() {
            return Err(problems);
        }
        let sub_path = sub_path.ok_or_else(|| vec!["AUTH_SUB_JSONPATH is invalid".to_string()])?;
        Ok(Verifier {
            secret,
            public,
            jwks,
            sub_path,
            issuer: cfg.issuer.filter(|s| !s.is_empty()),
            audience: cfg.audience.into_iter().filter(|a| !a.is_empty()).collect(),
            leeway: cfg.leeway_secs,
            cache: TokenCache::new(cfg.cache_size),
            jwks_refresh: cfg.jwks_refresh,
            admin_claim: cfg.admin_claim,
        })
    }

    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The identity of a token verified before and not yet expired: no crypto, one
    /// hash-map probe.
    pub fn cached(&self, token: &str) -> Option<Identity> {
        self.cache.get(token, now_secs())
    }

    /// Verifies a token (from the cache when it was verified before).
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let now = now_secs();
        if let Some(id) = self.cache.get(token, now) {
            return Ok(id);
        }
        let (alg, kid) = read_header(token)?;
        let key = self.key_for(alg, kid.as_deref()).await?;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &self.validation(alg))
            .map_err(|e| AuthError::from_jwt(&e))?
            .claims;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        let sub = self
            .sub_path
            .identity(&claims)
            .map_err(AuthError::NoIdentity)?;
        let identity = Identity {
            sub: sub.into(),
            expires_at,
            admin_claim: self
                .admin_claim
                .as_ref()
                .is_some_and(|a| a.path.holds(&claims, &a.value)),
        };
        self.cache.insert(token, identity.clone(), now);
        Ok(identity)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audience);
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v
    }

    async fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        use jsonwebtoken::AlgorithmFamily::Hmac;
        if alg.family() == Hmac {
            return self.secret.clone().ok_or_else(|| {
                AuthError::AlgorithmNotAllowed(format!(
                    "{alg:?} tokens are not accepted: this server has no JWT_SECRET"
                ))
            });
        }
        let public_fits = self.public.as_ref().filter(|k| k.family() == alg.family());
        if let Some(public) = public_fits
            && (kid.is_none() || self.jwks.is_none())
        {
            return Ok(public.clone());
        }
        match &self.jwks {
            Some(jwks) => Ok(jwks.key_for(kid, alg).await?.key),
            None => Err(AuthError::AlgorithmNotAllowed(format!(
                "{alg:?} does not match the configured key"
            ))),
        }
    }

    /// Loads the JWKS now (a no-op without one). Startup calls this so the first
    /// request does not wait for the IdP.
    pub async fn refresh_keys(&self) -> Result<usize, String> {
        match &self.jwks {
            Some(j) => j.refresh().await,
            None => Ok(0),
        }
    }

    /// Refreshes the JWKS periodically until `shutdown` completes (returns at once
    /// without a JWKS).
    pub async fn run_key_refresh(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        if self.jwks.is_none() {
            return;
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.jwks_refresh) => {
                    let _ = self.refresh_keys().await;
                }
            }
        }
    }

    pub fn jwks_key_count(&self) -> usize {
        self.jwks.as_ref().map_or(0, Jwks::key_count)
    }

    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}

/// `alg` and `kid` from the token's (unverified) header, with our own errors: `none`
/// and unknown algorithms are named.
fn read_header(token: &str) -> Result<(Algorithm, Option<String>), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("the header is not base64url".into()))?;
    let header: Value = serde_json::from_slice(&raw)
        .map_err(|_| AuthError::Malformed("the header is not JSON".into()))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::Malformed("the header has no alg".into()))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgorithmNotAllowed(
            "alg \"none\" (an unsigned token) is never accepted".into(),
        ));
    }
    let alg = Algorithm::from_str(alg)
        .map_err(|_| AuthError::AlgorithmNotAllowed(format!("unsupported alg {alg:?}")))?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((alg, kid))
}

/// A PEM public key of any supported type (RSA, EC P-256/P-384, Ed25519).
fn parse_public_pem(pem: &str) -> Result<DecodingKey, String> {
    let b = pem.as_bytes();
    DecodingKey::from_rsa_pem(b)
        .or_else(|_| DecodingKey::from_ec_pem(b))
        .or_else(|_| DecodingKey::from_ed_pem(b))
        .map_err(|_| {
            "JWT_PUBLIC_KEY is not a PEM RSA, EC or Ed25519 public key (or a path to one)"
                .to_string()
        })
}

impl std::fmt::Debug for Verifier {
    /// Never the keys: which sources are configured, and the checks.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secret", &self.secret.is_some())
            .field("public_key", &self.public.is_some())
            .field("jwks", &self.jwks.is_some())
            .field("sub_path", &self.sub_path.as_str())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}
