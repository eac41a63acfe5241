//! The audit trail (`AUDIT_LOG` on control and on the gateway): one JSON line per tool
//! call — allowed or refused — and one per proxied session, HTTP or WebSocket; never a
//! token, never a context value.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::harness::call;

use super::{System, reachable};

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_call_and_per_session_and_no_secret() {
    let dir = tempfile::tempdir().expect("a directory");
    let (control_log, gateway_log) = (
        dir.path().join("control-audit.jsonl"),
        dir.path().join("gateway-audit.jsonl"),
    );
    let (c, g) = (
        control_log.display().to_string(),
        gateway_log.display().to_string(),
    );
    let sys = System::start_with(1, &[("AUDIT_LOG", &c)], &[("AUDIT_LOG", &g)]).await;
    let alice = sys.mcp(0, "alice").await;
    let secret = "s3cr3t-value-from-context";
    let calls = [
        (
            "spawn_workspace",
            json!({"id": "audited", "spec": {"containers": [{"name": "app", "image": "node:20-alpine",
            "env": [{"name": "T", "value": sys.token("alice")}]}]},
            "context": {"API_KEY": secret}, "jwtPayload": {"sub": "root"}}),
        ),
        ("list_workspaces", json!({})),
        ("list_namespaces", json!({})),
    ];
    for (tool, args) in &calls {
        call(&alice, tool, args.clone()).await;
    }
    reachable(&sys, "audited", "alice").await;
    let token = sys.token("alice");
    let r = sys
        .gateway_get(&format!("/route/audited/page?token={token}&x=1"), &[])
        .await;
    assert_eq!(r.status, 200);
    // A WebSocket session too.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/route/audited/ws", sys.gateway.addr),
    )
    .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    ws.send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .expect("send");
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    ws.close(None).await.expect("close");
    drop(ws);

    shared::testkit::eventually("the audit lines", Duration::from_secs(20), || {
        let tool_lines = lines(&control_log)
            .iter()
            .filter(|l| l["type"] == "tool_call")
            .count();
        let sessions = lines(&gateway_log);
        tool_lines >= calls.len()
            && sessions.iter().any(|l| l["kind"] == "websocket")
            && sessions
                .iter()
                .any(|l| l["kind"] == "http" && l["status"] == 200)
    })
    .await;
    let tools = lines(&control_log);
    let tool_calls: Vec<&Value> = tools.iter().filter(|l| l["type"] == "tool_call").collect();
    assert_eq!(
        tool_calls.len(),
        calls.len(),
        "one line per call: {tools:?}"
    );
    for ((tool, _), line) in calls.iter().zip(&tool_calls) {
        assert_eq!(line["tool"], *tool);
        assert_eq!(
            line["subject"], "alice",
            "the verified subject, never jwtPayload's"
        );
        assert_eq!(line["role"], "user");
        assert!(line["session"].is_string(), "{line}");
        assert!(
            line["time"].is_string() && line["durationMs"].is_number(),
            "{line}"
        );
    }
    assert_eq!(tool_calls[0]["outcome"], "ok");
    assert_eq!(
        tool_calls[0]["arguments"]["context"]["API_KEY"],
        "[redacted]"
    );
    assert_eq!(tool_calls[2]["outcome"], "refused");
    assert_eq!(tool_calls[2]["code"], 403);
    let sessions = lines(&gateway_log);
    let http = sessions
        .iter()
        .find(|l| l["kind"] == "http" && l["status"] == 200)
        .expect("an HTTP session");
    assert_eq!(http["subject"], "alice");
    assert_eq!(http["workspace"], "audited");
    assert!(http["bytesOut"].as_u64().unwrap_or(0) > 0, "{http}");
    assert!(
        http["start"].is_string() && http["end"].is_string(),
        "{http}"
    );
    let ws_line = sessions
        .iter()
        .find(|l| l["kind"] == "websocket")
        .expect("a WebSocket session");
    assert_eq!(ws_line["status"], 101);
    assert!(
        ws_line["bytesIn"].as_u64().unwrap_or(0) > 0,
        "frames counted: {ws_line}"
    );
    // Nothing secret in either file.
    for path in [&control_log, &gateway_log] {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(!text.contains(&token), "a token in {}", path.display());
        assert!(
            !text.contains(secret),
            "a context value in {}",
            path.display()
        );
        assert!(
            !text.contains("\"root\""),
            "jwtPayload kept in {}",
            path.display()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}
