//! Types shared by the no-crd control plane (`control`) and data plane (`gateway`).
//!
//! The channel protocol, route and workspace types, label/annotation names and JWT
//! verification land here with the control-plane and gateway issues; until then this
//! crate only holds the label and annotation names the simulated cluster already honours.

/// Labels and annotations written on workspace pods and template ConfigMaps.
pub mod names {
    /// Annotation on a pod (or template) naming the port the workspace app listens on.
    pub const WORKSPACE_PORT_ANNOTATION: &str = "nogoo9/workspace-port";
    /// The port used when a workspace names none.
    pub const DEFAULT_WORKSPACE_PORT: u16 = 3000;
}
