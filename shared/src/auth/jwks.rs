//! Keys from a JWKS URI (an identity provider's published key set), kept in an
//! `ArcSwap` so verifications read them without a lock. An unknown `kid` (the IdP
//! rotated) triggers one refetch: single-flight (one request however many tokens wait)
//! and rate-limited (bogus kids cannot make us hammer the IdP). When the IdP is down
//! the last good keys stay in use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, jwk::AlgorithmParameters};

use super::AuthError;

/// Answers larger than this are refused (a key set is a few KiB).
const MAX_JWKS_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(crate) struct JwkKey {
    pub key: DecodingKey,
    /// The JWK's own `alg`, when it names one: the token must use exactly it.
    pub alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    generation: u64,
    loaded: bool,
    by_kid: HashMap<String, JwkKey>,
    without_kid: Vec<JwkKey>,
}

impl KeySet {
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<JwkKey> {
        let fits = |k: &&JwkKey| k.key.family() == alg.family() && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => self.by_kid.get(kid).filter(fits).cloned(),
            // A token without `kid` is accepted only when exactly one key could fit.
            None => {
                let mut fitting = self.by_kid.values().chain(&self.without_kid).filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        }
    }
}

pub(crate) struct Jwks {
    uri: String,
    client: reqwest::Client,
    keys: ArcSwap<KeySet>,
    /// Held while fetching (single flight); holds the time of the last on-demand fetch.
    fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refetch: Duration,
}

impl Jwks {
    pub fn new(uri: String, min_refetch: Duration) -> Result<Jwks, String> {
        // reqwest is built without its own provider: use the process's (ring, as kube
        // and Pingora do), installing it if `main` has not yet.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("JWKS_URI: cannot build an HTTP client: {e}"))?;
        Ok(Jwks {
            uri,
            client,
            keys: ArcSwap::from_pointee(KeySet::default()),
            fetch: tokio::sync::Mutex::new(None),
            min_refetch,
        })
    }

    pub fn key_count(&self) -> usize {
        let k = self.keys.load();
        k.by_kid.len() + k.without_kid.len()
    }

    /// The key for a token, refetching once (single flight, rate-limited) when unknown.
    pub async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<JwkKey, AuthError> {
        let seen = {
            let set = self.keys.load();
            if let Some(k) = set.find(kid, alg) {
                return Ok(k);
            }
            set.generation
        };
        let mut last = self.fetch.lock().await;
        // Someone else fetched while we waited for the lock: look again.
        let set = self.keys.load();
        if set.generation != seen {
            return set.find(kid, alg).ok_or_else(|| unknown(kid, alg));
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return Err(if set.loaded {
                unknown(kid, alg)
            } else {
                AuthError::KeysUnavailable(format!("{} could not be fetched", self.uri))
            });
        }
        *last = Some(Instant::now());
        drop(set);
        match self.fetch_and_store().await {
            Ok(_) => self
                .keys
                .load()
                .find(kid, alg)
                .ok_or_else(|| unknown(kid, alg)),
            Err(e) if !self.keys.load().loaded => Err(AuthError::KeysUnavailable(e)),
            Err(_) => Err(unknown(kid, alg)),
        }
    }

    /// Fetches the key set now (startup and the background refresh). On failure the
    /// previous keys stay in use.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _single_flight = self.fetch.lock().await;
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> Result<usize, String> {
        let body = self.fetch_body().await.inspect_err(|e| {
            tracing::warn!(uri = %self.uri, error = %e, "JWKS fetch failed; keeping the last good keys");
        })?;
        let set = parse_key_set(&body, self.keys.load().generation + 1)?;
        let n = set.by_kid.len() + set.without_kid.len();
        tracing::info!(uri = %self.uri, keys = n, "JWKS loaded");
        self.keys.store(Arc::new(set));
        Ok(n)
    }

    async fn fetch_body(&self) -> Result<Vec<u8>, String> {
        if let Some(path) = self.uri.strip_prefix("file://") {
            return tokio::fs::read(path)
                .await
                .map_err(|e| format!("reading {path}: {e}"));
        }
        let mut resp = self
            .client
            .get(&self.uri)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.uri))?;
        if !resp.status().is_success() {
            return Err(format!("GET {}: HTTP {}", self.uri, resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("GET {}: {e}", self.uri))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(format!("GET {}: key set larger than 1 MiB", self.uri));
            }
        }
        Ok(body)
    }
}

fn unknown(kid: Option<&str>, alg: Algorithm) -> AuthError {
    AuthError::UnknownKey(match kid {
        Some(kid) => format!("no {alg:?} key with kid {kid:?} in the key set"),
        None => format!("the token has no kid and the key set has no single {alg:?} key"),
    })
}

/// Parses a JWKS document, keeping the usable keys and skipping (with a warning) the
/// ones we cannot or must not use (symmetric `oct` keys, unknown types).
fn parse_key_set(body: &[u8], generation: u64) -> Result<KeySet, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut set = KeySet {
        generation,
        loaded: true,
        ..KeySet::default()
    };
    for raw in doc.keys {
        let jwk: Jwk = match serde_json::from_value(raw) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a JWKS key we cannot read");
                continue;
            }
        };
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            tracing::warn!(kid = ?jwk.common.key_id, "skipping a symmetric (oct) key published in the JWKS");
            continue;
        }
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| Algorithm::try_from(a).ok());
        let key = match DecodingKey::from_jwk(&jwk) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(kid = ?jwk.common.key_id, error = %e, "skipping an unusable JWKS key");
                continue;
            }
        };
        let entry = JwkKey { key, alg };
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, entry);
            }
            None => set.without_kid.push(entry),
        }
    }
    if set.by_kid.is_empty() && set.without_kid.is_empty() {
        return Err("the key set has no usable key".into());
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_and_an_empty_set_refused() {
        let body = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"},{"kty":"weird"}]}"#;
        let err = parse_key_set(body, 1).err().unwrap_or_default();
        assert!(err.contains("no usable key"), "{err}");
        assert!(parse_key_set(b"[]", 1).is_err());
        let ec = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},{"kty":"weird"}]}"#;
        let set = parse_key_set(ec, 1).unwrap_or_else(|e| panic!("{e}"));
        assert!(set.find(Some("k1"), Algorithm::ES256).is_some());
        assert!(
            set.find(Some("k1"), Algorithm::ES384).is_none(),
            "alg pinned by the JWK"
        );
        assert!(
            set.find(Some("k1"), Algorithm::RS256).is_none(),
            "family must match"
        );
        assert!(
            set.find(None, Algorithm::ES256).is_some(),
            "single fitting key"
        );
        assert!(set.find(Some("nope"), Algorithm::ES256).is_none());
    }
}
