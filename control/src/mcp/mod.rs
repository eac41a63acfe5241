//! The MCP server (rmcp): tool registration and dispatch, nothing else. Each `#[tool]`
//! method turns its arguments (`args`) into one call of the module that does the work,
//! so the descriptions and schemas here are what an agent reads. Which tools exist and
//! what they need is the catalogue (`crate::tools`).

pub mod args;
pub mod resources;
mod result;
mod schema;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_handler, tool_router};

use args::{
    CreatePodArgs, DeletePodArgs, FromTemplateArgs, ListPodsArgs, NamespaceArg, PatchPodArgs,
    PodLogsArgs, PodRef, RegistryArgs, ResumeArgs, SpawnArgs, StopArgs, TemplateArg,
    TemplateWriteArgs,
};
use result::to_result;

use crate::caller::{Caller, Transport};
use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::template_writes::TemplateFields;
use crate::{
    from_template, pod_writes, pods, registry, template_reads, template_writes, tools, workspaces,
};

/// One MCP server instance (per session over HTTP, one for stdio).
#[derive(Clone)]
pub struct NoCrdServer {
    ctx: Context,
    transport: Transport,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl NoCrdServer {
    pub fn new(ctx: Context, transport: Transport) -> Self {
        let tool_router = Self::routes_for(&ctx);
        NoCrdServer {
            ctx,
            transport,
            tool_router,
        }
    }

    /// Who makes this call: from the transport only (`jwtPayload` counts only with auth off).
    fn caller(
        &self,
        rc: &RequestContext<RoleServer>,
        jwt_payload: Option<&serde_json::Value>,
    ) -> Caller {
        Caller::of(&self.ctx, self.transport, rc, jwt_payload)
    }

    /// One line in the audit trail for a tool call (arguments redacted).
    fn audit(
        &self,
        who: &Caller,
        tool: &str,
        call: Option<AuditCall>,
        outcome: &str,
        code: Option<u16>,
        elapsed: std::time::Duration,
    ) {
        let (Some(log), Some(call)) = (&self.ctx.audit, call) else {
            return;
        };
        let mut fields = serde_json::Map::new();
        fields.insert(
            "subject".into(),
            serde_json::json!(who.subject().or(who.owner())),
        );
        fields.insert(
            "role".into(),
            serde_json::json!(match who.role() {
                crate::caller::Role::Admin => "admin",
                crate::caller::Role::User => "user",
            }),
        );
        fields.insert(
            "transport".into(),
            serde_json::json!(match self.transport {
                crate::caller::Transport::Stdio => "stdio",
                crate::caller::Transport::Http => "http",
            }),
        );
        fields.insert("tool".into(), serde_json::json!(tool));
        fields.insert("arguments".into(), shared::audit::redact(&call.arguments));
        fields.insert("outcome".into(), serde_json::json!(outcome));
        fields.insert("code".into(), serde_json::json!(code));
        fields.insert(
            "durationMs".into(),
            serde_json::json!((elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
        );
        fields.insert("session".into(), serde_json::json!(call.session));
        log.record("tool_call", fields);
    }

    #[tool(
        description = "Show the namespace tools act in by default, and the mode (cluster: tools accept a namespace; namespaced: pinned to this one).",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn current_namespace(
        &self,
        rc: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, None);
        Ok(to_result(Ok(pods::current_namespace(&self.ctx, &who))))
    }

    #[tool(
        description = "Show which Kubernetes permissions this server has (SelfSubjectAccessReview at startup) and which tools they enable or disable.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn check_permissions(
        &self,
        rc: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, None);
        let mut outcome = match &self.ctx.permissions {
            Some(report) => Outcome { text: report.to_text(), structured: report.to_json(self.ctx.mode, &self.ctx.namespace) },
            None => Outcome {
                text: "Permission checks are disabled (--disable-permission-checks): every tool is registered.".into(),
                structured: serde_json::json!({"mode": self.ctx.mode.as_str(), "namespace": self.ctx.namespace, "checksDisabled": true, "enabledTools": tools::names().collect::<Vec<_>>(), "disabledTools": [], "permissions": {}}),
            },
        };
        // What this caller may use, besides what the server's identity can.
        outcome
            .text
            .push_str(&format!("\n\nYour role: {}", who.role().as_str()));
        outcome.structured["role"] = who.role().as_str().into();
        outcome.structured["toolsForYou"] = tools::names()
            .filter(|t| crate::policy::listed_for(&who, t))
            .collect::<Vec<_>>()
            .into();
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
        let who = self.caller(&rc, None);
        let query = pods::PodQuery {
            namespace: args.namespace,
            label_selector: args.label_selector,
            field_selector: args.field_selector,
            limit: args.limit,
        };
        Ok(to_result(pods::list_pods(&self.ctx, query, &who).await))
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
        let who = self.caller(&rc, None);
        Ok(to_result(
            pods::get_pod(&self.ctx, args.namespace.as_deref(), &args.name, &who).await,
        ))
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
        let who = self.caller(&rc, None);
        Ok(to_result(
            pods::delete_pod(
                &self.ctx,
                args.namespace.as_deref(),
                &args.name,
                args.grace_period_seconds,
                &who,
            )
            .await,
        ))
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
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<CreatePodArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, None);
        let spec = args.pod_spec();
        Ok(to_result(
            pod_writes::create_pod(
                &self.ctx,
                &who,
                args.namespace.as_deref(),
                &args.name,
                args.labels.unwrap_or_default(),
                args.annotations.unwrap_or_default(),
                spec,
            )
            .await,
        ))
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
        let who = self.caller(&rc, None);
        Ok(to_result(
            pod_writes::patch_pod(
                &self.ctx,
                args.namespace.as_deref(),
                &args.name,
                args.patch,
                &who,
            )
            .await,
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
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<FromTemplateArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, None);
        Ok(to_result(
            from_template::create(
                &self.ctx,
                &who,
                &args.template_ref,
                args.namespace.as_deref(),
                &args.name,
                args.top_level_overrides.as_ref(),
                args.container_overrides.as_deref().unwrap_or_default(),
            )
            .await,
        ))
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
        let who = self.caller(&rc, None);
        let query = pods::LogQuery {
            container: args.container,
            tail_lines: args.tail_lines,
            since_seconds: args.since_seconds,
            limit_bytes: args.limit_bytes,
            timestamps: args.timestamps.unwrap_or(false),
            previous: args.previous.unwrap_or(false),
        };
        Ok(to_result(
            pods::get_pod_logs(
                &self.ctx,
                args.namespace.as_deref(),
                &args.name,
                query,
                &who,
            )
            .await,
        ))
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
        Parameters(args): Parameters<RegistryArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(to_result(
            registry::list_images(&self.ctx, args.repository.as_deref(), args.limit).await,
        ))
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
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<NamespaceArg>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, None);
        Ok(to_result(
            template_reads::list_templates(&self.ctx, &who, args.namespace.as_deref()).await,
        ))
    }

    #[tool(
        description = "Get one pod template: its PodSpec, description, tag and required context.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_template(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<TemplateArg>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, None);
        Ok(to_result(
            template_reads::get_template(&self.ctx, &who, &args.name, args.namespace.as_deref())
                .await,
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
        let (namespace, name, fields) = template_fields(args);
        Ok(to_result(
            template_writes::create(&self.ctx, namespace.as_deref(), &name, fields).await,
        ))
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
        let (namespace, name, fields) = template_fields(args);
        Ok(to_result(
            template_writes::update(&self.ctx, namespace.as_deref(), &name, fields).await,
        ))
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
        let who = self.caller(&rc, args.jwt_payload.as_ref());
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
        let who = self.caller(&rc, args.jwt_payload.as_ref());
        Ok(to_result(
            workspaces::stop(&self.ctx, &args.id, args.namespace.as_deref(), &who).await,
        ))
    }

    #[tool(
        description = "Resume a suspended workspace (its template's nogoo9/idle-action is suspend): its pod starts again with its files and context as they were. Returns when it answers through the gateway unless wait is false.",
        annotations(
            read_only_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn resume_workspace(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<ResumeArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, args.jwt_payload.as_ref());
        let wait = args.wait.unwrap_or(true).then(|| {
            std::time::Duration::from_secs(u64::from(args.wait_timeout_seconds.unwrap_or(120)))
        });
        let progress = crate::progress::Progress::for_request(&rc);
        Ok(to_result(
            workspaces::resume(
                &self.ctx,
                &args.id,
                args.namespace.as_deref(),
                &who,
                wait,
                &progress,
            )
            .await,
        ))
    }

    #[tool(
        description = "Mark a workspace active now, so an idle timeout does not stop it while you work without HTTP traffic through the gateway. Returns when it would be stopped if nothing else happens.",
        annotations(
            read_only_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn keepalive_workspace(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<StopArgs>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, args.jwt_payload.as_ref());
        Ok(to_result(
            workspaces::keepalive(&self.ctx, &args.id, args.namespace.as_deref(), &who).await,
        ))
    }

    #[tool(
        description = "List workspaces with their id, pod, state, URL, last activity and when they will be stopped for idleness or their maximum lifetime.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_workspaces(
        &self,
        rc: RequestContext<RoleServer>,
        Parameters(args): Parameters<NamespaceArg>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&rc, args.jwt_payload.as_ref());
        Ok(to_result(
            workspaces::list(&self.ctx, args.namespace.as_deref(), &who).await,
        ))
    }
}

/// A template write's arguments as the domain takes them.
fn template_fields(args: TemplateWriteArgs) -> (Option<String>, String, TemplateFields) {
    let fields = TemplateFields {
        description: args.description,
        tag: args.tag,
        labels: args.labels.unwrap_or_default(),
        annotations: args.annotations.unwrap_or_default(),
        spec: args.spec,
    };
    (args.namespace, args.name, fields)
}

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
            for tool in tools::TOOLS.iter().filter(|t| t.writes) {
                router.remove_route(tool.name);
            }
        }
        // Every schema a plain JSON Schema object: clients that validate tool schemas
        // (the official TypeScript SDK) refuse boolean subschemas such as `"affinity": true`.
        for route in router.map.values_mut() {
            schema::make_plain(&mut route.attr);
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
        if self.ctx.read_only && tools::find(name).is_some_and(|t| t.writes) {
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
            return Ok(to_result(Err(ToolError::forbidden(why))).into());
        }
        // The policy first: a user's call of an administrators' tool never reaches it.
        let who = self.caller(&context, None);
        let audit = self.ctx.audit.as_ref().map(|_| AuditCall {
            session: session_id(&context),
            arguments: request
                .arguments
                .clone()
                .map(serde_json::Value::Object)
                .unwrap_or_default(),
        });
        if let Err(refused) = crate::policy::may_call(&who, &request.name) {
            self.ctx.metrics.record_tool(
                &request.name,
                crate::metrics::Outcome::ToolError,
                std::time::Duration::ZERO,
            );
            self.audit(
                &who,
                &request.name,
                audit,
                "refused",
                Some(refused.code),
                std::time::Duration::ZERO,
            );
            return Ok(to_result(Err(refused)).into());
        }
        let started = std::time::Instant::now();
        let name = request.name.clone();
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let result = self.tool_router.call(tcc).await;
        let (outcome, code) = match &result {
            Ok(rmcp::model::CallToolResponse::Complete(r)) if r.is_error == Some(true) => (
                crate::metrics::Outcome::ToolError,
                r.structured_content
                    .as_ref()
                    .and_then(|s| s.get("code"))
                    .and_then(serde_json::Value::as_u64)
                    .map(|c| c as u16),
            ),
            Ok(_) => (crate::metrics::Outcome::Ok, None),
            Err(_) => (crate::metrics::Outcome::ProtocolError, None),
        };
        let elapsed = started.elapsed();
        self.ctx.metrics.record_tool(&name, outcome, elapsed);
        self.audit(&who, &name, audit, outcome.label(), code, elapsed);
        result
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, McpError> {
        // Users are not shown what the policy would refuse them, so the listing is per
        // caller: never cacheable for other users.
        let who = self.caller(&context, None);
        let tools = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|t| crate::policy::listed_for(&who, &t.name))
            .collect();
        let hints = context
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        let mut result = rmcp::model::ListToolsResult::with_all_items(tools);
        result.ttl_ms = hints.then_some(0);
        result.cache_scope = hints.then_some(rmcp::model::CacheScope::Private);
        Ok(result)
    }

    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, McpError> {
        let who = self.caller(&context, None);
        Ok(rmcp::model::ListResourcesResult::with_all_items(
            resources::list(&self.ctx, &who).await,
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
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, McpError> {
        let who = self.caller(&context, None);
        resources::read(&self.ctx, &who, &request.uri)
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

/// What the audit trail keeps of a tool call before it runs.
struct AuditCall {
    session: Option<String>,
    arguments: serde_json::Value,
}

/// The MCP session the request belongs to (streamable HTTP), if any.
fn session_id(rc: &RequestContext<RoleServer>) -> Option<String> {
    rc.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_context() -> Context {
        let client = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:1".parse().expect("url"),
        ))
        .expect("client");
        Context::new(client, "default".into(), crate::config::Mode::Cluster)
    }

    #[tokio::test]
    async fn the_catalogue_and_the_routes_agree_and_schemas_are_plain() {
        let router = NoCrdServer::new(offline_context(), Transport::Http).tool_router;
        let mut routed: Vec<String> = router
            .list_all()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        let mut catalogue: Vec<String> = tools::names().map(str::to_string).collect();
        routed.sort();
        catalogue.sort();
        assert_eq!(
            routed, catalogue,
            "every tool is in the catalogue, and only those"
        );
        for tool in router.list_all() {
            assert!(
                !schema::has_boolean_subschema(&tool.input_schema),
                "{}: boolean subschema in the input schema",
                tool.name
            );
            if let Some(out) = &tool.output_schema {
                assert!(!schema::has_boolean_subschema(out), "{}", tool.name);
            }
        }
    }

    #[tokio::test]
    async fn read_only_keeps_exactly_the_read_tools() {
        let mut ctx = offline_context();
        ctx.read_only = true;
        let server = NoCrdServer::new(ctx, Transport::Http);
        for tool in tools::TOOLS {
            assert_eq!(
                server.tool_router.has_route(tool.name),
                !tool.writes,
                "{}",
                tool.name
            );
            if tool.writes {
                assert!(
                    server
                        .why_unavailable(tool.name)
                        .is_some_and(|w| w.contains("--read-only"))
                );
            }
        }
    }
}
