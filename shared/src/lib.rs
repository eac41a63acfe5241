//! Types shared by the no-crd control plane (`control`) and data plane (`gateway`): the
//! channel protocol between them, the route table both hold, validated ids, and the
//! label/annotation names, and JWT verification (`auth`).

pub mod activity;
pub mod audit;
pub mod auth;
pub mod codec;
pub mod duration;
pub mod feed;
pub mod hash;
pub mod ids;
pub mod k8s_names;
pub mod lines;
pub mod proto;
pub mod route;
pub mod table;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod time;
pub mod typed;

/// Labels and annotations written on workspace pods and template ConfigMaps (the names
/// of the original no-crd, so its clusters and clients keep working).
pub mod names {
    /// Label marking workspace pods: `nogoo9/type=workspace`.
    pub const TYPE_LABEL: &str = "nogoo9/type";
    pub const TYPE_WORKSPACE: &str = "workspace";
    /// Label with the workspace id.
    pub const WORKSPACE_ID_LABEL: &str = "nogoo9/workspace-id";
    /// Label with the owner (a label-safe form of the subject).
    pub const USER_SUB_LABEL: &str = "nogoo9/user-sub";
    /// Annotation with the owner's exact subject (what ownership checks compare).
    pub const USER_SUB_ANNOTATION: &str = "nogoo9/user-sub";
    /// Annotation on a pod (or template) naming the port the workspace app listens on.
    pub const WORKSPACE_PORT_ANNOTATION: &str = "nogoo9/workspace-port";
    /// Template annotation: `"false"` turns off path routing's `Location`/`Set-Cookie`
    /// rewriting for the workspace.
    pub const REWRITE_RESPONSES_ANNOTATION: &str = "nogoo9/rewrite-responses";
    /// Template annotation: the `Host` the workspace sees, `public` (default) or `pod`.
    pub const UPSTREAM_HOST_ANNOTATION: &str = "nogoo9/upstream-host";
    /// The port used when a workspace names none.
    pub const DEFAULT_WORKSPACE_PORT: u16 = 3000;
    /// Label on spawned objects: `nogoo9/managed-by=nogoo9-spawner`.
    pub const MANAGED_BY_LABEL: &str = "nogoo9/managed-by";
    pub const MANAGED_BY_SPAWNER: &str = "nogoo9-spawner";
    /// Label naming the template a workspace was spawned from.
    pub const TEMPLATE_NAME_LABEL: &str = "nogoo9/template";
    /// Label marking template ConfigMaps: `nogoo9/pod-template=true`.
    pub const POD_TEMPLATE_LABEL: &str = "nogoo9/pod-template";
    /// Template annotations (the spawner's directives).
    pub const DESCRIPTION_ANNOTATION: &str = "nogoo9/description";
    pub const TAG_ANNOTATION: &str = "nogoo9/tag";
    pub const REQUIRED_CONTEXT_ANNOTATION: &str = "nogoo9/required-context";
    pub const INIT_IMAGE_ANNOTATION: &str = "nogoo9/init-image";
    pub const INIT_COMMAND_ANNOTATION: &str = "nogoo9/init-command";
    pub const PRE_STOP_COMMAND_ANNOTATION: &str = "nogoo9/pre-stop-command";
    pub const PRE_STOP_SIDECAR_IMAGE_ANNOTATION: &str = "nogoo9/pre-stop-sidecar-image";
    pub const IAM_ROLE_ARN_ANNOTATION: &str = "nogoo9/iam-role-arn";
    pub const DEFAULT_GRACE_PERIOD_ANNOTATION: &str = "nogoo9/default-grace-period";
    /// Label on control's claim ConfigMaps: `workspace` (an id) or `slot` (a user's limit).
    pub const CLAIM_LABEL: &str = "nogoo9/claim";
    /// An id claim's ConfigMap name is this prefix and the id.
    pub const ID_CLAIM_PREFIX: &str = "nogoo9-ws-";
    /// Template annotations: the workspace's lifecycle (`control/src/lifecycle.rs`).
    pub const IDLE_TIMEOUT_ANNOTATION: &str = "nogoo9/idle-timeout";
    pub const IDLE_ACTION_ANNOTATION: &str = "nogoo9/idle-action";
    pub const MAX_LIFETIME_ANNOTATION: &str = "nogoo9/max-lifetime";
    pub const MAX_PER_USER_ANNOTATION: &str = "nogoo9/max-per-user";
    /// Template annotation: a PersistentVolumeClaim of this size (e.g. `1Gi`) replaces the
    /// workspace's first `emptyDir`, so its files outlive suspension.
    pub const VOLUME_SIZE_ANNOTATION: &str = "nogoo9/volume-size";
    /// Template annotation: `"true"`: the owner's request to a suspended workspace wakes it.
    pub const WAKE_ON_REQUEST_ANNOTATION: &str = "nogoo9/wake-on-request";
    /// Template annotation: keep this many pods from the template created and Ready,
    /// unowned and unroutable, for spawns to claim (`control/src/pool.rs`).
    pub const WARM_POOL_SIZE_ANNOTATION: &str = "nogoo9/warm-pool-size";
    /// Template annotation: how context reaches the workspace, `env` (the default) or
    /// `file` (`/var/run/nogoo9/context.json`, which a pooled pod gets at claim time).
    pub const CONTEXT_DELIVERY_ANNOTATION: &str = "nogoo9/context-delivery";
    /// Pod annotation (file delivery): the context values as a JSON object.
    pub const CONTEXT_ANNOTATION: &str = "nogoo9/context";
    /// Pod annotation: when a warm-pool pod became a workspace (RFC 3339); its idle time
    /// and lifetime count from here, not from the pod's start.
    pub const CLAIMED_AT_ANNOTATION: &str = "nogoo9/claimed-at";
    /// Label on warm-pool pods: which template's pool they are in.
    pub const POOL_LABEL: &str = "nogoo9/pool";
    /// `nogoo9/type` of a warm-pool pod (never routed).
    pub const TYPE_POOL: &str = "pool";
    /// Annotation control keeps on a workspace pod: its last activity seen by any
    /// gateway (RFC 3339), patched at a bounded rate.
    pub const LAST_ACTIVITY_ANNOTATION: &str = "nogoo9/last-activity";
    /// The annotation EKS reads to give a service account an IAM role.
    pub const EKS_ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
}
