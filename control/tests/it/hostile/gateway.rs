//! At the gateway: no shape of `Authorization` carries the caller's token to the
//! workspace, no spelling of a forwarded header gets through from the client, what the
//! client sends as `Host` never breaks out of a challenge, and someone else's workspace
//! answers like a missing one.

use serde_json::json;

use super::{System, ok, reachable, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_the_workspace_and_headers_cannot_be_spoofed() {
    let sys = System::start(1).await;
    let alice = sys.mcp(0, "alice").await;
    ok(
        &alice,
        "spawn_workspace",
        json!({"id": "hdr", "spec": spec()}),
    )
    .await;
    reachable(&sys, "hdr", "alice").await;
    let token = sys.token("alice");
    let tab = format!("Bearer\t{token}");
    let upper = format!("BEARER  {token}");
    let r = sys
        .gateway_get(
            &format!("/route/hdr/echo?token={token}"),
            &[
                ("Authorization", &tab),
                ("Authorization", &upper),
                ("Authorization", "Basic dXNlcjpwYXNz"),
                ("X_Forwarded_User", "root"),
                ("X-Forwarded-User", "root"),
                ("x_forwarded_for", "10.6.6.6"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains(&token),
        "the token reached the workspace: {}",
        r.body
    );
    let seen = &r.json()["headers"];
    assert_eq!(seen["authorization"], "Basic dXNlcjpwYXNz", "{seen}");
    assert_eq!(seen["x-forwarded-user"], "alice", "{seen}");
    assert!(seen.get("x_forwarded_user").is_none(), "{seen}");
    assert!(seen.get("x_forwarded_for").is_none(), "{seen}");
    assert!(
        !r.json()["query"]
            .as_str()
            .unwrap_or_default()
            .contains("token")
    );

    // A Host built to break out of the challenge's quotes is not echoed.
    let evil = r#"gw.test",error="injected"#;
    let r = sys.gateway_get("/route/hdr/", &[("Host", evil)]).await;
    assert_eq!(r.status, 401);
    let challenge = r
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .unwrap_or_default()
        .to_string();
    assert!(!challenge.contains("injected"), "{challenge}");

    // Someone else's workspace answers exactly like a missing one.
    let bearer = format!("Bearer {}", sys.token("mallory"));
    let theirs = sys
        .gateway_get("/route/hdr/", &[("authorization", &bearer)])
        .await;
    let missing = sys
        .gateway_get("/route/no-such-ws/", &[("authorization", &bearer)])
        .await;
    assert_eq!(
        (theirs.status, theirs.body.as_str()),
        (missing.status, missing.body.as_str())
    );
    assert_eq!(theirs.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_challenge_never_echoes_a_hostile_host() {
    let sys = System::start(1).await;
    let r = super::raw_get(
        sys.controls[0].addr,
        "/mcp",
        &[("Host", r#"127.0.0.1",error="injected"#)],
    )
    .await;
    let challenge = r
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        r.status == 401 || r.status == 403,
        "{} {}",
        r.status,
        r.body
    );
    assert!(!challenge.contains("injected"), "{challenge}");
}
