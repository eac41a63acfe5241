//! What every control integration test shares: start-up (through `control::testkit`),
//! MCP clients, tool calls and raw HTTP.

use std::time::Duration;

use control::config::ControlConfig;
use control::testkit::Harness;
use kube_sim::SimConfig;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub type Client = RunningService<rmcp::RoleClient, ()>;

/// kube-sim (test defaults) + control, changed by `configure`.
pub async fn start(configure: impl FnOnce(&mut ControlConfig)) -> Harness {
    control::testkit::start(SimConfig::for_tests(), configure).await
}

/// Auth on with this HS256 secret.
pub fn with_hs256(config: &mut ControlConfig, secret: &str) {
    config.auth = shared::auth::AuthArgs::hs256(secret)
        .build()
        .expect("a valid secret");
}

/// A token for `sub`, expiring in `ttl` seconds (negative: already expired).
pub fn token(secret: &str, sub: &str, ttl: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    shared::auth::mint::hs256(secret.as_bytes(), &json!({"sub": sub, "exp": now + ttl}))
        .expect("a token")
}

/// An MCP client over streamable HTTP, without credentials.
pub async fn plain_client(url: &str) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_string()))
        .await
        .expect("an MCP session")
}

/// An MCP client over streamable HTTP sending `Authorization: Bearer <token>`.
pub async fn client(url: &str, token: &str) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    config.auth_header = Some(token.to_string());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("an MCP session")
}

/// Calls a tool (bounded in time), panicking on protocol errors.
pub async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    let Value::Object(map) = arguments else {
        panic!("arguments must be an object")
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map)),
    )
    .await
    .unwrap_or_else(|_| panic!("{tool} timed out"))
    .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// The text content of a result.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The structured content of a result (`null` when absent).
pub fn structured(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or_default()
}

/// A raw HTTP/1.1 exchange on a fresh connection: the whole answer, head and body.
pub async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    // What arrived within 10 s: an answer that never ends fails the test's own checks.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await;
    out
}

/// A `GET` with `Connection: close` and any extra header lines (each ending in `\r\n`).
pub fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n")
}
