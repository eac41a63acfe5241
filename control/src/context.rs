//! What every tool works with: the Kubernetes client, the default namespace and the mode.

use crate::config::Mode;
use crate::mcp::outcome::ToolError;

#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub namespace: String,
    pub mode: Mode,
}

impl Context {
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
