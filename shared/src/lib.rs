//! Types shared by the no-crd control plane (`control`) and data plane (`gateway`): the
//! channel protocol between them, the route table both hold, validated ids, and the
//! label/annotation names. JWT verification joins with the gateway and control issues.

pub mod codec;
pub mod ids;
pub mod proto;
pub mod route;
pub mod table;

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
    /// The port used when a workspace names none.
    pub const DEFAULT_WORKSPACE_PORT: u16 = 3000;
}
