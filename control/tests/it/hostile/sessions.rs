//! An MCP session belongs to the identity that opened it: anyone else presenting its id
//! gets exactly the answer an unknown session gets, whatever the method, and the owner
//! is not disturbed.

use serde_json::{Value, json};

use super::System;

struct Answer {
    status: u16,
    body: String,
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    session: Option<&str>,
    body: Option<&Value>,
) -> (Answer, Option<String>) {
    let mut req = http
        .request(method, url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("an answer");
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = resp.status().as_u16();
    // An event stream may stay open: the head and what came at once are enough.
    let body = tokio::time::timeout(std::time::Duration::from_secs(2), resp.text())
        .await
        .map(|b| b.unwrap_or_default())
        .unwrap_or_default();
    (Answer { status, body }, sid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_identity_on_a_session_gets_the_unknown_session_answer() {
    let sys = System::start(1).await;
    let url = sys.controls[0].url();
    let http = reqwest::Client::new();
    let (alice, mallory) = (sys.token("alice"), sys.token("mallory"));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (answer, sid) = send(
        &http,
        reqwest::Method::POST,
        &url,
        &alice,
        None,
        Some(&init),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sid = sid.expect("a session id");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    send(
        &http,
        reqwest::Method::POST,
        &url,
        &alice,
        Some(&sid),
        Some(&initialized),
    )
    .await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_workspaces", "arguments": {}}});

    let unknown = "0000-not-a-session";
    for (method, body) in [
        (reqwest::Method::POST, Some(&list)),
        (reqwest::Method::GET, None),
        (reqwest::Method::DELETE, None),
    ] {
        let (theirs, _) = send(&http, method.clone(), &url, &mallory, Some(&sid), body).await;
        let (nobodys, _) = send(&http, method.clone(), &url, &mallory, Some(unknown), body).await;
        assert_eq!(
            (theirs.status, theirs.body.as_str()),
            (nobodys.status, nobodys.body.as_str()),
            "{method} with alice's session"
        );
        if method != reqwest::Method::DELETE {
            // (rmcp answers a DELETE of any unknown session 202 and does nothing.)
            assert!(
                theirs.status >= 400,
                "{method}: {} {}",
                theirs.status,
                theirs.body
            );
        }
    }
    // Alice's session is intact.
    let (mine, _) = send(
        &http,
        reqwest::Method::POST,
        &url,
        &alice,
        Some(&sid),
        Some(&list),
    )
    .await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert!(mine.body.contains("\"workspaces\""), "{}", mine.body);
}
