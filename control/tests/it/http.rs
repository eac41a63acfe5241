//! The HTTP server's settings, end to end: `--base-url` (every route under it, the
//! RFC 9728 document also at the root), `/metrics`, CORS preflights and the origin
//! list, the Host allow-list, and HTTPS with h2 (checked with curl).

use std::process::Command;
use std::sync::Arc;

use control::config::{Cors, normalize_base_url};
use serde_json::json;

use crate::harness::{call, get, plain_client, raw, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_url_metrics_cors_and_hosts() {
    let h = start(|c| {
        c.http.base_url = normalize_base_url("/nocrd9/").expect("a base URL");
        c.http.cors = Cors::parse(
            "https://ui.example",
            "GET, POST, DELETE, OPTIONS",
            "Content-Type, Authorization, mcp-protocol-version, mcp-session-id, last-event-id",
        )
        .expect("CORS");
        c.http.allowed_hosts = Some(vec!["127.0.0.1".into(), "mcp.example".into()]);
    })
    .await;
    let addr = h.control.http_addr.expect("http");
    assert!(
        raw(addr, &get("/nocrd9/healthz", ""))
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        raw(addr, &get("/healthz", ""))
            .await
            .starts_with("HTTP/1.1 404"),
        "routes live under the prefix"
    );
    let doc = raw(
        addr,
        &get("/.well-known/oauth-protected-resource/nocrd9/mcp", ""),
    )
    .await;
    assert!(
        doc.starts_with("HTTP/1.1 200")
            && doc.contains("\"resource\":\"http://127.0.0.1/nocrd9/mcp\""),
        "{doc}"
    );

    let client = plain_client(&format!("http://{addr}/nocrd9/mcp")).await;
    call(&client, "current_namespace", json!({})).await;
    call(&client, "list_pods", json!({"limit": 0})).await;
    let _ = client.cancel().await;
    let metrics = raw(addr, &get("/nocrd9/metrics", "")).await;
    for line in [
        "nocrd9_tool_calls_total{outcome=\"ok\",tool=\"current_namespace\"} 1",
        "nocrd9_tool_calls_total{outcome=\"tool_error\",tool=\"list_pods\"} 1",
        "nocrd9_gateways_connected 0",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }

    // CORS: the listed origin is allowed (DELETE included), another is not.
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /nocrd9/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: DELETE\r\nAccess-Control-Request-Headers: mcp-session-id\r\nConnection: close\r\n\r\n"
        )
    };
    let ok = raw(addr, &preflight("https://ui.example"))
        .await
        .to_ascii_lowercase();
    assert!(
        ok.contains("access-control-allow-origin: https://ui.example"),
        "{ok}"
    );
    assert!(ok.contains("delete"), "{ok}");
    let other = raw(addr, &preflight("https://evil.example"))
        .await
        .to_ascii_lowercase();
    assert!(!other.contains("access-control-allow-origin"), "{other}");

    // Host allow-list (DNS rebinding): a listed host is served, another refused.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let post = |host: &str| {
        format!(
            "POST /nocrd9/mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{init}",
            init.len()
        )
    };
    let listed = raw(addr, &post("mcp.example")).await;
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    let refused = raw(addr, &post("rebound.attacker.example")).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_h2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap_or_else(|e| panic!("{e}"));
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
    let (c, k) = (
        cert_path.to_string_lossy().to_string(),
        key_path.to_string_lossy().to_string(),
    );
    let tls = control::tls::server_config(c.as_ref(), k.as_ref()).expect("TLS files");
    let h = start(|config| config.tls = Some(Arc::new(tls))).await;
    let port = h.control.http_addr.expect("http").port();
    let url = format!("https://127.0.0.1:{port}/healthz");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "-k", "--http2", "-i", "--max-time", "10", &url])
            .output()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/2 200"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("{\"status\":\"ok\"}"), "{text}");
    // Plain HTTP on the TLS port is not served.
    let plain = raw(h.control.http_addr.expect("http"), &get("/healthz", "")).await;
    assert!(!plain.contains("200 OK"), "{plain}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_served_under_the_base_url_and_as_a_resource() {
    let h = start(|c| c.http.base_url = "/nocrd9".into()).await;
    let addr = h.control.http_addr.expect("http");
    for path in ["/nocrd9", "/nocrd9/", "/nocrd9/ui", "/nocrd9/ui/"] {
        let page = raw(addr, &get(path, "")).await;
        assert!(page.starts_with("HTTP/1.1 200"), "{path}: {page}");
        let lower = page.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: text/html; charset=utf-8"),
            "{path}: {page}"
        );
        assert!(
            lower.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{path}: {page}"
        );
        assert!(
            page.contains(r#"<meta name="nocrd9-base-url" content="/nocrd9">"#)
                && page.contains(r#"src="/nocrd9/ui/app.js""#),
            "{path}: the page calls MCP and loads assets under the base URL"
        );
    }
    let script = raw(addr, &get("/nocrd9/ui/app.js", "")).await;
    assert!(
        script.starts_with("HTTP/1.1 200")
            && script
                .to_ascii_lowercase()
                .contains("content-type: text/javascript")
            && script.contains("class HttpTransport"),
        "{script}"
    );
    let style = raw(addr, &get("/nocrd9/ui/app.css", "")).await;
    assert!(
        style.starts_with("HTTP/1.1 200") && style.contains("--accent"),
        "{style}"
    );
    assert!(
        raw(addr, &get("/ui", "")).await.starts_with("HTTP/1.1 404"),
        "the UI lives under the prefix"
    );

    let client = plain_client(&format!("http://{addr}/nocrd9/mcp")).await;
    let listed = client
        .list_resources(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ui = listed
        .resources
        .iter()
        .find(|r| r.uri == "ui://nogoo9/app")
        .unwrap_or_else(|| panic!("ui://nogoo9/app not listed: {listed:?}"));
    assert_eq!(ui.mime_type.as_deref(), Some("text/html;profile=mcp-app"));
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "ui://nogoo9/app",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = match &read.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        text.contains("<style>") && text.contains("class HostTransport"),
        "the resource is self-contained"
    );
    let tools = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let meta = |name: &str| {
        tools
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.meta.as_ref())
            .map(|m| serde_json::Value::Object(m.0.clone()))
    };
    assert_eq!(
        meta("list_workspaces").map(|m| m["ui"]["resourceUri"].clone()),
        Some(serde_json::json!("ui://nogoo9/app")),
        "list_workspaces points MCP hosts at the UI"
    );
    assert_eq!(meta("spawn_workspace"), None, "only list_workspaces does");
    let _ = client.cancel().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_enabled_false_serves_neither_page_nor_resource() {
    let h = start(|c| c.http.ui_enabled = false).await;
    let addr = h.control.http_addr.expect("http");
    for path in ["/", "/ui", "/ui/app.js"] {
        let page = raw(addr, &get(path, "")).await;
        assert!(
            page.starts_with("HTTP/1.1 404") && page.contains("UI_ENABLED=false"),
            "{path}: {page}"
        );
    }
    let client = plain_client(&format!("http://{addr}/mcp")).await;
    let listed = client
        .list_resources(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        listed.resources.iter().all(|r| r.uri != "ui://nogoo9/app"),
        "{listed:?}"
    );
    let tools = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        tools.iter().all(|t| t.meta.is_none()),
        "no tool points at a disabled UI"
    );
    let err = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "ui://nogoo9/app",
        ))
        .await
        .err()
        .unwrap_or_else(|| panic!("reading a disabled UI succeeded"));
    assert!(err.to_string().contains("UI_ENABLED=false"), "{err}");
    let _ = client.cancel().await;
    h.stop().await;
}
