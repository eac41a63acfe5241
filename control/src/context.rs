//! What every tool works with: the Kubernetes client, the default namespace and the mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shared::ids::WorkspaceId;

use crate::config::{ControlConfig, Mode};
use crate::outcome::ToolError;
use crate::permissions::PermissionReport;
use crate::publish::Publisher;

#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub namespace: String,
    pub mode: Mode,
    /// The route publisher, when routes are published (spawns wait on it).
    pub publisher: Option<Publisher>,
    /// `--gateway-url`, for workspace URLs.
    pub gateway_url: Option<String>,
    spawn_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The startup permission check (`None` when checks are disabled: everything enabled).
    pub permissions: Option<Arc<PermissionReport>>,
    /// The Pod Security Standard pod specs from tools must meet.
    pub pod_security: crate::pod_security::Level,
    /// Token verification for the HTTP transport (`None`: auth off).
    pub auth: Option<Arc<shared::auth::Verifier>>,
    /// `REGISTRY_URL`, for `list_registry_images`.
    pub registry_url: Option<String>,
    /// `--read-only`: write tools are neither listed nor callable.
    pub read_only: bool,
    /// `UI_ENABLED`: the `ui://nogoo9/app` resource is listed and readable.
    pub ui_enabled: bool,
    pub metrics: Arc<crate::metrics::ControlMetrics>,
    /// Where users' workspaces and pods live.
    pub workspace_namespace: String,
    /// The only ServiceAccount users' pods may name.
    pub workspace_service_account: String,
    /// Verified subjects that are administrators.
    pub admin_subjects: Arc<std::collections::BTreeSet<String>>,
    /// This server's public URL (documents and challenges).
    pub public_url: Option<String>,
    /// Which pod holds each workspace id (from the watch; `None` for a library user).
    pub workspaces: Option<crate::claims::Workspaces>,
    /// `--workspace-domain`: workspace URLs in the host form.
    pub workspace_domain: Option<String>,
    /// Lifecycle defaults and how late other replicas' activity may be known.
    pub lifecycle: crate::lifecycle::Defaults,
    pub activity_slack: std::time::Duration,
    /// `--max-workspaces-per-user`.
    pub max_workspaces_per_user: Option<u32>,
    /// The audit trail (`--audit-log`).
    pub audit: Option<shared::audit::AuditLog>,
}

impl Context {
    /// A context with every setting at its default (auth off, no publisher): what a
    /// library user starts from.
    pub fn new(client: kube::Client, namespace: String, mode: Mode) -> Self {
        Context {
            client,
            workspace_namespace: namespace.clone(),
            workspace_service_account: "default".into(),
            admin_subjects: Arc::default(),
            public_url: None,
            workspaces: None,
            workspace_domain: None,
            lifecycle: Default::default(),
            activity_slack: std::time::Duration::from_secs(35),
            max_workspaces_per_user: None,
            audit: None,
            namespace,
            mode,
            publisher: None,
            gateway_url: None,
            spawn_locks: Arc::default(),
            permissions: None,
            pod_security: crate::pod_security::Level::Baseline,
            auth: None,
            registry_url: None,
            read_only: false,
            ui_enabled: true,
            metrics: Arc::default(),
        }
    }

    /// The context `nocrd9` runs tools with (permissions are filled in at start).
    pub fn from_config(
        client: kube::Client,
        config: &ControlConfig,
        publisher: Option<Publisher>,
    ) -> Self {
        let mut ctx = Context::new(client, config.namespace.clone(), config.mode);
        ctx.publisher = publisher;
        ctx.gateway_url = config.gateway_url.clone();
        ctx.pod_security = config.pod_security;
        ctx.registry_url = config.registry_url.clone();
        ctx.read_only = config.read_only;
        ctx.ui_enabled = config.http.ui_enabled;
        ctx.auth = config.auth.clone();
        ctx.workspace_namespace = config.workspace_namespace.clone();
        ctx.workspace_service_account = config.workspace_service_account.clone();
        ctx.admin_subjects = Arc::new(config.admin_subjects.clone());
        ctx.public_url = config.public_url.clone();
        ctx.workspace_domain = config.workspace_domain.clone();
        ctx.lifecycle = config.lifecycle;
        ctx.activity_slack = config.activity_slack;
        ctx.max_workspaces_per_user = config.max_workspaces_per_user;
        ctx
    }

    /// Serializes spawns of one workspace id in this process (ids are global; across
    /// replicas, the id's claim decides).
    pub async fn spawn_lock(&self, id: &WorkspaceId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.spawn_locks.lock().unwrap_or_else(|p| p.into_inner());
            // Forget locks nobody holds, so the map stays as small as the spawns in flight.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The namespace a tool acts in: always the server's in namespaced mode; otherwise the
    /// requested one (checked) or the server's.
    pub fn namespace_for(&self, requested: Option<&str>) -> Result<String, ToolError> {
        match (self.mode, requested) {
            (Mode::Namespaced, _) | (Mode::Cluster, None) => Ok(self.namespace.clone()),
            (Mode::Cluster, Some(ns)) => {
                if shared::ids::WorkspaceId::parse(ns).is_err() {
                    return Err(ToolError::bad_input(format!(
                        "namespace {ns:?} is not a valid namespace name (lowercase letters, digits and '-')"
                    )));
                }
                Ok(ns.to_string())
            }
        }
    }
}
