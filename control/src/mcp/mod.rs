//! The MCP server (rmcp): tool registration and dispatch. Each `#[tool]` method is a
//! one-liner into the module that does the work, so the descriptions and schemas here
//! are what an agent reads.

pub mod from_template;
pub mod outcome;
pub mod pod_writes;
pub mod pods;
pub mod registry;
pub mod resources;
pub mod template_writes;
pub mod workspace_args;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_handler, tool_router};

use crate::caller::Caller;

use crate::context::Context;
use from_template::FromTemplateArgs;
use outcome::to_result;
use pod_writes::{CreatePodArgs, PatchPodArgs};
use pods::{DeletePodArgs, ListPodsArgs, PodLogsArgs, PodRef};
use template_writes::TemplateWriteArgs;
use workspace_args::{NamespaceArg, SpawnArgs, StopArgs, TemplateArg};

use crate::workspaces;

/// One MCP server instance (per session over HTTP, one for stdio).
#[derive(Clone)]
pub struct NoCrdServer {
    ctx: Context,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl NoCrdServer {
    pub fn new(ctx: Context) -> Self {
        let tool_router = Self::routes_for(&ctx);
        NoCrdServer { ctx, tool_router }
    }

    #[tool(
        description = "Show the namespace tools act in by default, and the mode (cluster: tools accept a namespace; namespaced: pinned to this one).",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn current_namespace(&self) -> Result<CallToolResult, McpError> {
        Ok(to_result(Ok(pods::current_namespace(&self.ctx))))
    }

    #[tool(
        description = "Show which Kubernetes permissions this server has (SelfSubjectAccessReview at startup) and which tools they enable or disable.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn check_permissions(&self) -> Result<CallToolResult, McpError> {
        let outcome = match &self.ctx.permissions {
            Some(report) => outcome::Outcome { text: report.to_text(), structured: report.to_json(self.ctx.mode, &self.ctx.namespace) },
            None => outcome::Outcome {
                text: "Permission checks are disabled (--disable-permission-checks): every tool is registered.".into(),
                structured: serde_json::json!({"mode": self.ctx.mode.as_str(), "namespace": self.ctx.namespace, "checksDisabled": true, "enabledTools": ALL_TOOLS, "disabledTools": [], "permissions": {}}),
            },
        };
        Ok(to_result(Ok(outcome)))
    }

    #[tool(
        description = "List pods in a namespace with phase, readiness, restarts, IP and node. Filter with labelSelector/fieldSelector; at most `limit` pods (default 500) are returned.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_pods(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<ListPodsArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = Caller::of(&self.ctx, &rc, None);
        Ok(to_result(pods::list_pods(&self.ctx, args, &who).await))
    }

    #[tool(
        description = "Get one pod as the Kubernetes API returns it.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_pod(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<PodRef>,
    ) -> Result<CallToolResult, McpError> {
        let who = Caller::of(&self.ctx, &rc, None);
        Ok(to_result(pods::get_pod(&self.ctx, args, &who).await))
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
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<DeletePodArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = Caller::of(&self.ctx, &rc, None);
        Ok(to_result(pods::delete_pod(&self.ctx, args, &who).await))
    }

    #[tool(
        description = "Create a pod from a pod spec given as arguments (containers required). The spec must meet the server's Pod Security Standard; nogoo9/ labels and annotations are reserved for spawn_workspace.",
        annotations(
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_pod(
        &self,
        Parameters(args): Parameters<CreatePodArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(pod_writes::create_pod(&self.ctx, args).await))
    }

    #[tool(
        description = "Patch a pod with a strategic merge patch. Kubernetes allows only some pod fields to change (images, labels, annotations…); nogoo9/ labels and annotations are reserved for the spawner.",
        annotations(
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn patch_pod(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<PatchPodArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = Caller::of(&self.ctx, &rc, None);
        Ok(to_result(
            pod_writes::patch_pod(&self.ctx, args, &who).await,
        ))
    }

    #[tool(
        description = "Create a plain pod (not a workspace) from a template, with top-level and per-container overrides (env merged by name). Validated and checked against the Pod Security Standard.",
        annotations(
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_pod_from_template(
        &self,
        Parameters(args): Parameters<FromTemplateArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(from_template::create(&self.ctx, args).await))
    }

    #[tool(
        description = "Read a pod's logs: the last 500 lines unless tailLines or limitBytes say otherwise; container defaults to the one named \"agent\", else the first.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_pod_logs(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<PodLogsArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = Caller::of(&self.ctx, &rc, None);
        Ok(to_result(pods::get_pod_logs(&self.ctx, args, &who).await))
    }

    #[tool(
        description = "List the namespaces this server can work in (only its own in namespaced mode).",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_namespaces(&self) -> Result<CallToolResult, McpError> {
        Ok(to_result(pods::list_namespaces(&self.ctx).await))
    }

    #[tool(
        description = "List the images (<registry>/<repository>:<tag>) in the registry at REGISTRY_URL, optionally only repositories starting with `repository`; at most `limit` (default 500). Repositories whose tags cannot be read are reported.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = true)
    )]
    async fn list_registry_images(
        &self,
        Parameters(args): Parameters<registry::RegistryArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(registry::list_images(&self.ctx, args).await))
    }
}

#[tool_router(router = workspace_router, vis = "pub(crate)")]
impl NoCrdServer {
    #[tool(
        description = "List pod templates (ConfigMaps labelled nogoo9/pod-template=true) with description, tag and the context keys a spawn needs. Invalid templates are skipped and reported.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_templates(
        &self,
        Parameters(args): Parameters<NamespaceArg>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(
            workspaces::list_templates(&self.ctx, args.namespace.as_deref()).await,
        ))
    }

    #[tool(
        description = "Get one pod template: its PodSpec, description, tag and required context.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_template(
        &self,
        Parameters(args): Parameters<TemplateArg>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(
            workspaces::get_template(&self.ctx, &args.name, args.namespace.as_deref()).await,
        ))
    }

    #[tool(
        description = "Create a pod template: a ConfigMap labelled nogoo9/pod-template=true holding the spec, with description, tag and spawner annotations. The spec is validated (the bad field is named) and must meet the Pod Security Standard.",
        annotations(
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_template(
        &self,
        Parameters(args): Parameters<TemplateWriteArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(template_writes::create(&self.ctx, args).await))
    }

    #[tool(
        description = "Update a pod template: given fields replace (spec) or merge (labels, annotations); an empty description or tag clears it. A concurrent edit is refused (409). Only template ConfigMaps are touched.",
        annotations(
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn update_template(
        &self,
        Parameters(args): Parameters<TemplateWriteArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(template_writes::update(&self.ctx, args).await))
    }

    #[tool(
        description = "Delete a pod template. Only ConfigMaps labelled as templates are deleted.",
        annotations(
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn delete_template(
        &self,
        Parameters(args): Parameters<TemplateArg>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(
            template_writes::delete(&self.ctx, &args.name, args.namespace.as_deref()).await,
        ))
    }

    #[tool(
        description = "Spawn a workspace pod from a template (or an inline spec) with the given context. Idempotent per id: an existing workspace is returned. With wait (default true) it returns once the workspace answers through the gateway, with its URL.",
        annotations(
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn spawn_workspace(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<SpawnArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = Caller::of(&self.ctx, &rc, args.jwt_payload.as_ref());
        let req = workspaces::SpawnRequest {
            id: args.id,
            namespace: args.namespace,
            template_ref: args.template_ref,
            spec: args.spec,
            annotations: args.annotations.unwrap_or_default(),
            context: args.context.unwrap_or_default(),
            wait: args.wait.unwrap_or(true),
            wait_timeout: std::time::Duration::from_secs(u64::from(
                args.wait_timeout_seconds.unwrap_or(120),
            )),
        };
        let progress = crate::progress::Progress::for_request(&rc);
        Ok(to_result(
            workspaces::spawn(&self.ctx, req, &who, &progress).await,
        ))
    }

    #[tool(
        description = "Stop a workspace: its pod stops gracefully (pre-stop hooks run) and its IAM service account is removed.",
        annotations(
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn stop_workspace(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<StopArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = Caller::of(&self.ctx, &rc, args.jwt_payload.as_ref());
        Ok(to_result(
            workspaces::stop(&self.ctx, &args.id, args.namespace.as_deref(), &who).await,
        ))
    }

    #[tool(
        description = "List workspaces with their id, pod, status and URL.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_workspaces(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<NamespaceArg>,
    ) -> Result<CallToolResult, McpError> {
        let who = Caller::of(&self.ctx, &rc, args.jwt_payload.as_ref());
        Ok(to_result(
            workspaces::list(&self.ctx, args.namespace.as_deref(), &who).await,
        ))
    }
}

/// Tools that change nothing (all that `--read-only` keeps).
pub const READ_TOOLS: &[&str] = &[
    "current_namespace",
    "check_permissions",
    "list_pods",
    "get_pod",
    "get_pod_logs",
    "list_namespaces",
    "list_registry_images",
    "list_templates",
    "get_template",
    "list_workspaces",
];

/// Every tool that may be gated by permissions (the always-available ones are not listed).
pub const ALL_TOOLS: &[&str] = &[
    "list_pods",
    "get_pod",
    "create_pod",
    "patch_pod",
    "create_pod_from_template",
    "delete_pod",
    "get_pod_logs",
    "list_namespaces",
    "list_templates",
    "get_template",
    "create_template",
    "update_template",
    "delete_template",
    "spawn_workspace",
    "stop_workspace",
    "list_workspaces",
];

impl NoCrdServer {
    /// All routes, less the tools the startup check found this identity cannot use and,
    /// with `--read-only`, every write tool.
    fn routes_for(ctx: &Context) -> ToolRouter<Self> {
        let mut router = Self::tool_router() + Self::workspace_router();
        if let Some(report) = &ctx.permissions {
            for tool in &report.disabled {
                router.remove_route(tool);
            }
        }
        if ctx.read_only {
            let writes: Vec<String> = router
                .list_all()
                .into_iter()
                .map(|t| t.name.to_string())
                .filter(|n| !READ_TOOLS.contains(&n.as_str()))
                .collect();
            for tool in writes {
                router.remove_route(&tool);
            }
        }
        if ctx.ui_enabled
            && let Some(route) = router.map.get_mut("list_workspaces")
        {
            // MCP Apps: a host may render the Pod Manager for this tool's results. Only
            // here (the "show me my workspaces" entry point), so agents spawning many
            // workspaces do not get a UI per call. Both spellings hosts read.
            let uri = crate::ui::RESOURCE_URI;
            let meta = serde_json::json!({"ui": {"resourceUri": uri}, "ui/resourceUri": uri});
            if let serde_json::Value::Object(map) = meta {
                route.attr.meta = Some(rmcp::model::MetaObject(map));
            }
        }
        router
    }

    /// Why a known tool is not routed, as a tool error the agent can read (instead of a
    /// bare "tool not found").
    fn why_unavailable(&self, name: &str) -> Option<String> {
        if self.ctx.read_only && !READ_TOOLS.contains(&name) && ALL_TOOLS.contains(&name) {
            return Some(format!(
                "{name} changes the cluster and this server runs with --read-only (READ_ONLY=true)"
            ));
        }
        let report = self.ctx.permissions.as_ref()?;
        report.disabled.iter().any(|t| t == name).then(|| {
            format!("{name} is disabled: this server's Kubernetes identity lacks the permissions it needs (see check_permissions)")
        })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NoCrdServer {
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        if !self.tool_router.has_route(&request.name)
            && let Some(why) = self.why_unavailable(&request.name)
        {
            return Ok(to_result(Err(outcome::ToolError {
                code: 403,
                message: why,
            }))
            .into());
        }
        let started = std::time::Instant::now();
        let name = request.name.clone();
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let result = self.tool_router.call(tcc).await;
        let outcome = match &result {
            Ok(rmcp::model::CallToolResponse::Complete(r)) if r.is_error == Some(true) => {
                crate::metrics::Outcome::ToolError
            }
            Ok(_) => crate::metrics::Outcome::Ok,
            Err(_) => crate::metrics::Outcome::ProtocolError,
        };
        self.ctx
            .metrics
            .record_tool(&name, outcome, started.elapsed());
        result
    }

    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, McpError> {
        Ok(rmcp::model::ListResourcesResult::with_all_items(
            resources::list(&self.ctx).await,
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, McpError> {
        Ok(rmcp::model::ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, McpError> {
        resources::read(&self.ctx, &request.uri)
            .await
            .map(Into::into)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
            .with_server_info(Implementation::new("nogoo9", env!("CARGO_PKG_VERSION")))
            .with_instructions("no-crd: Kubernetes pods and workspaces for agents. Start with current_namespace, then list_pods.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_tool_is_routed() {
        let router = NoCrdServer::new(crate::context::Context::new(
            kube::Client::try_from(kube::Config::new(
                "http://127.0.0.1:1"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            ))
            .unwrap_or_else(|e| panic!("{e}")),
            "default".into(),
            crate::config::Mode::Cluster,
            None,
            None,
        ))
        .tool_router;
        for name in [
            "list_pods",
            "list_templates",
            "spawn_workspace",
            "stop_workspace",
            "list_workspaces",
            "get_template",
        ] {
            assert!(router.get(name).is_some(), "{name}");
            assert!(router.has_route(name), "{name} has a route");
        }
    }
}
