//! An MCP client of control (rmcp's streamable HTTP client), for tests that drive
//! workspaces through the tools as an agent would.

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;

pub type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// A session with this bearer token.
pub async fn client_as(mcp_url: &str, token: &str) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(mcp_url.to_string());
    config.auth_header = Some(token.to_string());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A tool call's result (a protocol error fails the test; a tool error is returned).
pub async fn call(client: &Client, name: &str, args: Value) -> CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new(name.to_string())
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The result's text content.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
