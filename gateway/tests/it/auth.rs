//! The auth matrix through the real gateway: no token, bad tokens, someone else's
//! workspace, the owner by header / query / cookie, what the upstream sees, the cookie
//! a browser gets, WebSockets with a token, and the protected-resource document.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::auth::{Verifier, VerifierConfig};
use tokio_util::sync::CancellationToken;

use crate::harness::{Control, Options, TestGateway, control, echo_app, get, publish, route};

const SECRET: &[u8] = b"gateway-test-secret-gateway-test-secret";
const RSA_KEY: &str = include_str!("../../../shared/tests/fixtures/keys/rsa.key");
const RSA_PUB: &str = include_str!("../../../shared/tests/fixtures/keys/rsa.pub");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hs256(claims: &Value) -> String {
    shared::auth::mint::hs256(SECRET, claims).unwrap_or_else(|e| panic!("{e}"))
}

fn verifier(cfg: VerifierConfig) -> Arc<Verifier> {
    Arc::new(
        Verifier::new(VerifierConfig {
            cache_size: 1000,
            leeway_secs: 5,
            ..cfg
        })
        .unwrap_or_else(|e| panic!("{e:?}")),
    )
}

async fn setup(opts: Options) -> (Control, TestGateway, CancellationToken) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let stop = CancellationToken::new();
    let upstream = echo_app(&stop).await;
    let gw = TestGateway::start_with(&ctl.socket, opts).await;
    publish(
        &ctl,
        vec![
            route("owned", upstream, Some("alice")),
            route("orphan", upstream, None),
        ],
    )
    .await;
    (ctl, gw, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_gets_through_and_the_token_stays_at_the_gateway() {
    let auth = verifier(VerifierConfig {
        secret: Some(SECRET.to_vec()),
        issuer: Some("https://idp.test".into()),
        ..Default::default()
    });
    let (ctl, gw, stop) = setup(Options {
        auth: Some(auth),
        ..Default::default()
    })
    .await;
    let claims = |sub: &str, exp: u64| json!({"sub": sub, "exp": exp, "iss": "https://idp.test"});
    let alice = hs256(&claims("alice", now() + 600));
    let bob = hs256(&claims("bob", now() + 600));
    let expired = hs256(&claims("alice", now() - 600));
    let bearer = |t: &str| format!("Bearer {t}");

    // Refusals: 401 with the challenge and the reason; someone else's workspace answers
    // exactly like a missing one (the access log says forbidden).
    let r = get(gw.addr, "/route/owned/", &[]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(r.json()["reason"], "missing_token");
    let challenge = r.header("www-authenticate").unwrap_or_default().to_string();
    assert_eq!(
        challenge,
        "Bearer resource_metadata=\"http://gw.test:8080/.well-known/oauth-protected-resource\""
    );
    let r = get(
        gw.addr,
        "/route/owned/",
        &[("authorization", &bearer(&expired))],
    )
    .await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (401, Some("expired_token"))
    );
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .contains("error=\"invalid_token\"")
    );
    let r = get(
        gw.addr,
        "/route/owned/",
        &[("authorization", "Bearer not.a.jwt")],
    )
    .await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (401, Some("malformed_token"))
    );
    let wrong_iss = hs256(&json!({"sub": "alice", "exp": now() + 60, "iss": "https://evil"}));
    let r = get(
        gw.addr,
        "/route/owned/",
        &[("authorization", &bearer(&wrong_iss))],
    )
    .await;
    assert_eq!(r.json()["reason"], "wrong_issuer");
    let r = get(
        gw.addr,
        "/route/owned/",
        &[("authorization", &bearer(&bob))],
    )
    .await;
    let missing = get(gw.addr, "/route/nope/", &[("authorization", &bearer(&bob))]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, missing.body.as_str()),
        "someone else's workspace looks missing"
    );
    assert_eq!(r.json()["error"], "workspace_not_found");
    let r = get(
        gw.addr,
        "/route/orphan/",
        &[("authorization", &bearer(&alice))],
    )
    .await;
    assert_eq!(
        r.status, 404,
        "an ownerless workspace is nobody's while auth is on"
    );
    // No probing without a token: an unknown id answers 401 too, 404 only when signed in.
    assert_eq!(get(gw.addr, "/route/nope/", &[]).await.status, 401);
    assert_eq!(
        get(
            gw.addr,
            "/route/nope/",
            &[("authorization", &bearer(&alice))]
        )
        .await
        .status,
        404
    );

    // The owner by header: the token is removed, the identity is set, spoofs dropped.
    let r = get(
        gw.addr,
        "/route/owned/a?x=1",
        &[
            ("authorization", &bearer(&alice)),
            ("x-forwarded-user", "mallory"),
            ("cookie", "theme=dark"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(seen["path"], "/a");
    assert_eq!(seen["query"], "x=1");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
    assert_eq!(seen["headers"]["cookie"], "theme=dark");
    assert!(
        r.header("set-cookie").is_none(),
        "no cookie for header-authenticated calls"
    );

    // By query: the `token` parameter never reaches the workspace; a page load gets the
    // cookie scoped to the workspace and is sent on to the same URL without the token.
    let r = get(
        gw.addr,
        &format!("/route/owned/page?a=1&token={alice}&b=2"),
        &[("accept", "text/html,application/xhtml+xml")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/route/owned/page?a=1&b=2"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let cookie = r.header("set-cookie").unwrap_or_default().to_string();
    let followed = get(
        gw.addr,
        "/route/owned/page?a=1&b=2",
        &[
            ("accept", "text/html,application/xhtml+xml"),
            ("cookie", cookie.split(';').next().unwrap_or_default()),
            (
                "referer",
                &format!("http://gw.test/route/owned/start?token={alice}&z=9"),
            ),
        ],
    )
    .await;
    assert_eq!(followed.status, 200, "{}", followed.body);
    assert_eq!(followed.json()["query"], "a=1&b=2");
    assert_eq!(
        followed.json()["headers"]["referer"],
        "http://gw.test/route/owned/start?z=9",
        "no token in the Referer the workspace sees"
    );
    assert!(!followed.body.contains(&alice), "{}", followed.body);
    assert!(
        cookie.starts_with(&format!("nocr_token={alice}; Path=/route/owned/; Max-Age=")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly; SameSite=Strict") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let max_age: u64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        (590..=600).contains(&max_age),
        "expires with the token: {max_age}"
    );
    let r = get(gw.addr, &format!("/route/owned/api?token={alice}"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("set-cookie").is_none(),
        "an API call by query gets no cookie"
    );
    assert!(
        r.json().get("query").is_none_or(|q| q.is_null() || q == ""),
        "{}",
        r.body
    );

    // By cookie: works, and the token cookie is removed, other cookies kept.
    let r = get(
        gw.addr,
        "/route/owned/sub",
        &[("cookie", &format!("a=1; nocr_token={alice}; b=2"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["cookie"], "a=1; b=2");

    // WebSocket upgrades authenticate by query token (browsers cannot set headers).
    let url = format!("ws://{}/route/owned/socket?token={alice}", gw.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(matches!(echoed, Ok(Some(Ok(_)))), "{echoed:?}");
    let refused = tokio_tungstenite::connect_async(format!(
        "ws://{}/route/owned/socket?token={bob}",
        gw.addr
    ))
    .await;
    assert!(refused.is_err(), "bob's upgrade is refused");

    // The RFC 9728 document, plain and path-suffixed.
    let doc = get(gw.addr, "/.well-known/oauth-protected-resource", &[]).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json()["resource"], "http://gw.test:8080");
    assert_eq!(
        doc.json()["authorization_servers"],
        json!(["https://idp.test"])
    );
    let doc = get(
        gw.addr,
        "/.well-known/oauth-protected-resource/route/owned/",
        &[],
    )
    .await;
    assert_eq!(doc.json()["resource"], "http://gw.test:8080/route/owned/");

    // Metrics: failures by reason, and repeated tokens served from the cache.
    let metrics = get(gw.admin, "/metrics", &[]).await.body;
    for line in [
        "nocrd9_gateway_auth_failures_total{reason=\"missing_token\"} 2",
        "nocrd9_gateway_auth_failures_total{reason=\"expired_token\"} 1",
        "nocrd9_gateway_requests_total{outcome=\"forbidden\"} 3",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    let cached: u64 = metrics
        .lines()
        .find(|l| l.starts_with("nocrd9_gateway_auth_accepted_total{cached=\"true\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        cached >= 5,
        "tokens are verified once, then cached: {metrics}"
    );
    stop.cancel();
    ctl.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_with_forward_auth_passes_the_token_on() {
    let auth = verifier(VerifierConfig {
        public_key_pem: Some(RSA_PUB.into()),
        ..Default::default()
    });
    let (ctl, gw, stop) = setup(Options {
        auth: Some(auth),
        forward_auth: true,
        ..Default::default()
    })
    .await;
    let key = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let alice = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "alice", "exp": now() + 600}),
        &key,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = get(
        gw.addr,
        &format!("/route/owned/x?token={alice}"),
        &[("authorization", &format!("Bearer {alice}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {alice}"));
    assert_eq!(seen["query"], format!("token={alice}"));
    // An HS256 token forged with the public key as its secret is refused.
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "exp": now() + 600}),
        &EncodingKey::from_secret(RSA_PUB.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = get(
        gw.addr,
        "/route/owned/",
        &[("authorization", &format!("Bearer {forged}"))],
    )
    .await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (401, Some("algorithm_not_allowed"))
    );
    stop.cancel();
    ctl.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_off_everyone_reaches_every_workspace() {
    let (ctl, gw, stop) = setup(Options::default()).await;
    let r = get(
        gw.addr,
        "/route/orphan/?token=whatever",
        &[("authorization", "Bearer x")],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["query"], "token=whatever", "nothing is ours to strip");
    assert!(seen["headers"].get("x-forwarded-user").is_none());
    stop.cancel();
    ctl.stop.cancel();
}
