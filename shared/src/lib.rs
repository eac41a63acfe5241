//! Types shared by the no-crd control plane (`control`) and data plane (`gateway`): the
//! channel protocol between them, the route table both hold, validated ids, and the
//! label/annotation names. JWT verification joins with the gateway and control issues.

pub mod codec;
pub mod ids;
pub mod proto;
pub mod route;
pub mod table;

/// Labels and annotations written on workspace pods and template ConfigMaps.
pub mod names {
    /// Annotation on a pod (or template) naming the port the workspace app listens on.
    pub const WORKSPACE_PORT_ANNOTATION: &str = "nogoo9/workspace-port";
    /// The port used when a workspace names none.
    pub const DEFAULT_WORKSPACE_PORT: u16 = 3000;
}
