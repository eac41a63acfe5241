//! JWT verification: every algorithm we accept, every reason we refuse, and the JWKS
//! cache against a real HTTP key server on loopback (rotation, single flight, rate
//! limit, an issuer that goes down).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::auth::{AuthError, Verifier, VerifierConfig};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";
const RSA_KEY: &str = include_str!("fixtures/keys/rsa.key");
const RSA_PUB: &str = include_str!("fixtures/keys/rsa.pub");
const RSA2_KEY: &str = include_str!("fixtures/keys/rsa2.key");
const EC_KEY: &str = include_str!("fixtures/keys/ec.key");
const EC_PUB: &str = include_str!("fixtures/keys/ec.pub");
const ED_KEY: &str = include_str!("fixtures/keys/ed.key");
const ED_PUB: &str = include_str!("fixtures/keys/ed.pub");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 600, "iat": now()})
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, key).unwrap_or_else(|e| panic!("{e}"))
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn verifier(cfg: VerifierConfig) -> Verifier {
    Verifier::new(VerifierConfig {
        cache_size: 100,
        leeway_secs: 5,
        jwks_refresh: Duration::from_secs(300),
        ..cfg
    })
    .unwrap_or_else(|e| panic!("{e:?}"))
}

fn hs_verifier() -> Verifier {
    verifier(VerifierConfig {
        secret: Some(SECRET.to_vec()),
        ..Default::default()
    })
}

#[tokio::test]
async fn the_admin_claim_is_read_from_the_configured_path() {
    let v = verifier(VerifierConfig {
        secret: Some(SECRET.to_vec()),
        admin_claim: Some(shared::auth::AdminClaim {
            path: shared::auth::ClaimPath::parse_setting("$.groups", "AUTH_ADMIN_JSONPATH")
                .unwrap_or_else(|e| panic!("{e}")),
            value: "platform-admins".into(),
        }),
        ..Default::default()
    });
    let key = EncodingKey::from_secret(SECRET);
    let with = |groups: serde_json::Value| {
        let mut c = claims("carol");
        c["groups"] = groups;
        sign(Algorithm::HS256, &key, None, &c)
    };
    let admin = v
        .verify(&with(serde_json::json!(["dev", "platform-admins"])))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(admin.admin_claim);
    for not_admin in [
        serde_json::json!("dev"),
        serde_json::json!(["Platform-Admins"]),
        serde_json::Value::Null,
    ] {
        let id = v
            .verify(&with(not_admin.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!id.admin_claim, "{not_admin}");
    }
    let plain = hs_verifier()
        .verify(&with(serde_json::json!(["platform-admins"])))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!plain.admin_claim, "no admin claim configured, no admin");
}

async fn refused(v: &Verifier, token: &str) -> AuthError {
    v.verify(token).await.expect_err("must be refused")
}

#[tokio::test]
async fn hs256_accepts_a_good_token_and_names_each_failure() {
    let v = hs_verifier();
    let key = EncodingKey::from_secret(SECRET);
    let ok = sign(Algorithm::HS256, &key, None, &claims("alice"));
    let id = v.verify(&ok).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&*id.sub, "alice");

    let wrong_secret = EncodingKey::from_secret(b"another-secret-another-secret-00");
    let e = refused(
        &v,
        &sign(Algorithm::HS256, &wrong_secret, None, &claims("a")),
    )
    .await;
    assert_eq!(e.code(), "bad_signature");

    let expired = json!({"sub": "a", "exp": now() - 60});
    assert_eq!(
        refused(&v, &sign(Algorithm::HS256, &key, None, &expired))
            .await
            .code(),
        "expired_token"
    );
    let within_leeway = json!({"sub": "a", "exp": now() - 2});
    assert!(
        v.verify(&sign(Algorithm::HS256, &key, None, &within_leeway))
            .await
            .is_ok()
    );

    let early = json!({"sub": "a", "exp": now() + 600, "nbf": now() + 300});
    assert_eq!(
        refused(&v, &sign(Algorithm::HS256, &key, None, &early))
            .await
            .code(),
        "token_not_yet_valid"
    );

    let no_exp = json!({"sub": "a"});
    let e = refused(&v, &sign(Algorithm::HS256, &key, None, &no_exp)).await;
    assert_eq!(e, AuthError::MissingClaim("exp".into()));

    let no_sub = json!({"exp": now() + 60});
    assert_eq!(
        refused(&v, &sign(Algorithm::HS256, &key, None, &no_sub))
            .await
            .code(),
        "no_identity"
    );

    for garbage in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.sig"] {
        let e = refused(&v, garbage).await;
        assert_eq!(e.code(), "malformed_token", "{garbage:?}: {e}");
    }
}

#[tokio::test]
async fn issuer_audience_and_identity_path_are_enforced() {
    let v = verifier(VerifierConfig {
        secret: Some(SECRET.to_vec()),
        issuer: Some("https://idp.example".into()),
        audience: vec!["nocrd9".into()],
        sub_path: Some("$.ext['user.id']".into()),
        ..Default::default()
    });
    let key = EncodingKey::from_secret(SECRET);
    let good = json!({"iss": "https://idp.example", "aud": ["x", "nocrd9"], "exp": now() + 60, "ext": {"user.id": 7}});
    let id = v
        .verify(&sign(Algorithm::HS256, &key, None, &good))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&*id.sub, "7");
    let mut bad = good.clone();
    bad["iss"] = json!("https://evil.example");
    assert_eq!(
        refused(&v, &sign(Algorithm::HS256, &key, None, &bad))
            .await
            .code(),
        "wrong_issuer"
    );
    let mut bad = good.clone();
    bad["aud"] = json!("someone-else");
    assert_eq!(
        refused(&v, &sign(Algorithm::HS256, &key, None, &bad))
            .await
            .code(),
        "wrong_audience"
    );
    let mut bad = good.clone();
    bad.as_object_mut().map(|o| o.remove("aud"));
    assert_eq!(
        refused(&v, &sign(Algorithm::HS256, &key, None, &bad)).await,
        AuthError::MissingClaim("aud".into())
    );
    let mut bad = good;
    bad["ext"] = json!({});
    assert_eq!(
        refused(&v, &sign(Algorithm::HS256, &key, None, &bad))
            .await
            .code(),
        "no_identity"
    );
}

#[tokio::test]
async fn every_public_key_algorithm_verifies_with_its_pem() {
    type LoadKey = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;
    type Case = (&'static str, &'static str, Vec<Algorithm>, LoadKey);
    let cases: [Case; 3] = [
        (
            RSA_PUB,
            RSA_KEY,
            vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS512,
            ],
            EncodingKey::from_rsa_pem,
        ),
        (
            EC_PUB,
            EC_KEY,
            vec![Algorithm::ES256],
            EncodingKey::from_ec_pem,
        ),
        (
            ED_PUB,
            ED_KEY,
            vec![Algorithm::EdDSA],
            EncodingKey::from_ed_pem,
        ),
    ];
    for (public, private, algs, load) in cases {
        let v = verifier(VerifierConfig {
            public_key_pem: Some(public.into()),
            ..Default::default()
        });
        let key = load(private.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        for alg in algs {
            let id = v.verify(&sign(alg, &key, None, &claims("bob"))).await;
            assert_eq!(id.map(|i| i.sub.to_string()), Ok("bob".into()), "{alg:?}");
        }
        // An HS256 token is refused outright: there is no secret.
        let hs = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
            None,
            &claims("x"),
        );
        assert_eq!(refused(&v, &hs).await.code(), "algorithm_not_allowed");
    }
    // A token signed by another RSA key fails on its signature.
    let v = verifier(VerifierConfig {
        public_key_pem: Some(RSA_PUB.into()),
        ..Default::default()
    });
    let other = EncodingKey::from_rsa_pem(RSA2_KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        refused(&v, &sign(Algorithm::RS256, &other, None, &claims("x")))
            .await
            .code(),
        "bad_signature"
    );
    // An ES256 token against an RSA key: the family does not match the configured key.
    let ec = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        refused(&v, &sign(Algorithm::ES256, &ec, None, &claims("x")))
            .await
            .code(),
        "algorithm_not_allowed"
    );
}

#[tokio::test]
async fn alg_none_and_algorithm_confusion_are_refused() {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let v = verifier(VerifierConfig {
        public_key_pem: Some(RSA_PUB.into()),
        ..Default::default()
    });
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&claims("admin"))
        );
        let e = refused(&v, &unsigned).await;
        assert_eq!(e.code(), "algorithm_not_allowed", "{alg}");
        assert!(e.to_string().contains("never accepted"), "{e}");
    }
    // The classic confusion: an HS256 token whose "secret" is the server's public key.
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUB.as_bytes()),
        None,
        &claims("admin"),
    );
    assert_eq!(refused(&v, &forged).await.code(), "algorithm_not_allowed");
    let weird = format!("{}.{}.x", b64(&json!({"alg": "HS1"})), b64(&claims("a")));
    assert!(
        refused(&v, &weird)
            .await
            .to_string()
            .contains("unsupported alg")
    );
}

#[tokio::test]
async fn verified_tokens_are_cached_until_they_expire() {
    let v = hs_verifier();
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        None,
        &claims("carol"),
    );
    assert!(v.cached(&token).is_none());
    assert!(v.verify(&token).await.is_ok());
    assert_eq!(
        v.cached(&token).map(|i| i.sub.to_string()),
        Some("carol".into())
    );
    assert_eq!(v.cache_len(), 1);
    let refused_tok = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"x-other-secret-x-other-secret-xx"),
        None,
        &claims("m"),
    );
    assert!(v.verify(&refused_tok).await.is_err());
    assert_eq!(v.cache_len(), 1, "refused tokens are not cached");
}

/// A JWKS endpoint on loopback whose key set and health the test controls.
struct KeyServer {
    url: String,
    set: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

async fn key_server(initial: Value) -> KeyServer {
    let set = Arc::new(std::sync::Mutex::new(initial));
    let fetches = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, f, d) = (set.clone(), fetches.clone(), down.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (s, f, d) = (s.clone(), f.clone(), d.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                // A slow IdP, so concurrent unknown kids overlap with the fetch.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if d.load(Ordering::SeqCst) {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                }
                let body = s.lock().unwrap_or_else(|p| p.into_inner()).to_string();
                (axum::http::StatusCode::OK, body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    KeyServer {
        url: format!("http://{addr}/jwks.json"),
        set,
        fetches,
        down,
    }
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut j = Jwk::from_encoding_key(key, alg).unwrap_or_else(|e| panic!("{e}"));
    j.common.key_id = Some(kid.into());
    j
}

fn jwks(keys: Vec<Jwk>) -> Value {
    serde_json::to_value(JwkSet { keys }).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn jwks_rotation_single_flight_rate_limit_and_outage() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let k1 = rsa();
    let k2 = EncodingKey::from_rsa_pem(RSA2_KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let server = key_server(jwks(vec![jwk(&k1, Algorithm::RS256, "k1")])).await;
    let v = Arc::new(verifier(VerifierConfig {
        jwks_uri: Some(server.url.clone()),
        jwks_min_refetch: Duration::from_secs(3600),
        ..Default::default()
    }));
    assert_eq!(v.refresh_keys().await, Ok(1));
    let t1 = sign(Algorithm::RS256, &k1, Some("k1"), &claims("dave"));
    assert!(v.verify(&t1).await.is_ok());
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // The IdP rotates in k2; 20 requests with a k2 token arrive at once: one fetch.
    *server.set.lock().unwrap_or_else(|p| p.into_inner()) = jwks(vec![
        jwk(&k1, Algorithm::RS256, "k1"),
        jwk(&k2, Algorithm::RS256, "k2"),
    ]);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let v = v.clone();
        let t = sign(
            Algorithm::RS256,
            &k2,
            Some("k2"),
            &claims(&format!("user{i}")),
        );
        tasks.push(tokio::spawn(async move { v.verify(&t).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap_or_else(|e| panic!("{e}")).is_ok());
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2, "single flight");

    // Bogus kids do not hammer the IdP: within the minimum interval, no refetch.
    for i in 0..10 {
        let t = sign(
            Algorithm::RS256,
            &k1,
            Some(&format!("bogus{i}")),
            &claims("x"),
        );
        assert_eq!(refused(&v, &t).await.code(), "unknown_key");
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2, "rate-limited");

    // The JWK pins its algorithm: an RS512 token under the RS256 key is refused.
    let t = sign(Algorithm::RS512, &k1, Some("k1"), &claims("x"));
    assert_eq!(refused(&v, &t).await.code(), "unknown_key");

    // The IdP goes down: the refresh fails, the keys we had keep working.
    server.down.store(true, Ordering::SeqCst);
    assert!(v.refresh_keys().await.is_err());
    let t = sign(Algorithm::RS256, &k2, Some("k2"), &claims("erin"));
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(v.jwks_key_count(), 2);
}

#[tokio::test]
async fn an_unreachable_jwks_is_reported_as_keys_unavailable() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = key_server(json!({"keys": []})).await;
    server.down.store(true, Ordering::SeqCst);
    let v = verifier(VerifierConfig {
        jwks_uri: Some(server.url.clone()),
        jwks_min_refetch: Duration::from_millis(0),
        ..Default::default()
    });
    let t = sign(Algorithm::RS256, &rsa(), Some("k1"), &claims("x"));
    let e = refused(&v, &t).await;
    assert_eq!(e.code(), "keys_unavailable", "{e}");
    // Back up (with a key): the next unknown kid refetches and succeeds.
    *server.set.lock().unwrap_or_else(|p| p.into_inner()) =
        jwks(vec![jwk(&rsa(), Algorithm::RS256, "k1")]);
    server.down.store(false, Ordering::SeqCst);
    assert!(v.verify(&t).await.is_ok());
}

#[tokio::test]
async fn jwks_from_a_file_url() {
    let dir = tempfile_dir();
    let path = dir.join("jwks.json");
    std::fs::write(
        &path,
        jwks(vec![jwk(&rsa(), Algorithm::RS256, "f1")]).to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let v = verifier(VerifierConfig {
        jwks_uri: Some(format!("file://{}", path.display())),
        ..Default::default()
    });
    let t = sign(Algorithm::RS256, &rsa(), Some("f1"), &claims("fran"));
    assert_eq!(
        v.verify(&t).await.map(|i| i.sub.to_string()),
        Ok("fran".into())
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("nocrd9-auth-{}-{}", std::process::id(), now()));
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}
