//! Helpers shared by the control plane's integration tests.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::Value;

/// Calls a tool (bounded in time), panicking on protocol errors.
pub async fn call(
    client: &RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
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
#[allow(dead_code)] // not every test binary reads text
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `nocrd9` (HTTP on an ephemeral loopback port, namespace `default`, `extra` flags) on a
/// fresh simulated cluster built from `config`. The temp dir holds the route socket.
#[allow(dead_code)] // not every test binary starts its own control plane
pub async fn start_control(
    config: loadtest::sim::SimConfig,
    extra: &[&str],
) -> (loadtest::sim::Sim, control::run::Control, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = loadtest::sim::Sim::start(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir
        .path()
        .join("control.sock")
        .to_string_lossy()
        .to_string();
    let mut argv = vec![
        "nocrd9",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--namespace",
        "default",
        "--gateway-socket",
        &socket,
    ];
    argv.extend_from_slice(extra);
    let args = <control::config::Args as clap::Parser>::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{e}"));
    let kube = sim.client().await.unwrap_or_else(|e| panic!("{e}"));
    let control = control::run::Control::start(&args, kube)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (sim, control, dir)
}
