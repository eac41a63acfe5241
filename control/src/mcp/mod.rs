//! The MCP server (rmcp): tool registration and dispatch. Each `#[tool]` method is a
//! one-liner into the module that does the work, so the descriptions and schemas here
//! are what an agent reads.

pub mod outcome;
pub mod pods;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData as McpError, ServerHandler, tool, tool_handler, tool_router};

use crate::context::Context;
use outcome::to_result;
use pods::{DeletePodArgs, ListPodsArgs, PodLogsArgs, PodRef};

/// One MCP server instance (per session over HTTP, one for stdio).
#[derive(Clone)]
pub struct NoCrdServer {
    ctx: Context,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl NoCrdServer {
    pub fn new(ctx: Context) -> Self {
        NoCrdServer {
            ctx,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Show the namespace tools act in by default, and the mode (cluster: tools accept a namespace; namespaced: pinned to this one).",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn current_namespace(&self) -> Result<CallToolResult, McpError> {
        Ok(to_result(Ok(pods::current_namespace(&self.ctx))))
    }

    #[tool(
        description = "List pods in a namespace with phase, readiness, restarts, IP and node. Filter with labelSelector/fieldSelector; at most `limit` pods (default 500) are returned.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_pods(
        &self,
        Parameters(args): Parameters<ListPodsArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(pods::list_pods(&self.ctx, args).await))
    }

    #[tool(
        description = "Get one pod as the Kubernetes API returns it.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_pod(
        &self,
        Parameters(args): Parameters<PodRef>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(pods::get_pod(&self.ctx, args).await))
    }

    #[tool(
        description = "Delete a pod. It stops gracefully (its preStop hook runs) within gracePeriodSeconds, or its own grace period when not given.",
        annotations(
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn delete_pod(
        &self,
        Parameters(args): Parameters<DeletePodArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(pods::delete_pod(&self.ctx, args).await))
    }

    #[tool(
        description = "Read a pod's logs: the last 500 lines unless tailLines or limitBytes say otherwise; container defaults to the one named \"agent\", else the first.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_pod_logs(
        &self,
        Parameters(args): Parameters<PodLogsArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(pods::get_pod_logs(&self.ctx, args).await))
    }

    #[tool(
        description = "List the namespaces this server can work in (only its own in namespaced mode).",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_namespaces(&self) -> Result<CallToolResult, McpError> {
        Ok(to_result(pods::list_namespaces(&self.ctx).await))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NoCrdServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("nogoo9", env!("CARGO_PKG_VERSION")))
            .with_instructions("no-crd: Kubernetes pods and workspaces for agents. Start with current_namespace, then list_pods.")
    }
}
