//! A route: where one workspace's traffic goes, and who may send it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ids::WorkspaceId;

/// Whether a workspace can take traffic yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// The pod exists but is not Ready (or has no IP yet): the gateway answers 503 with
    /// `Retry-After`.
    Pending,
    /// The pod is Ready at `addr`.
    Ready,
}

/// One workspace's route. The pod UID fences removals and keys upstream connection
/// pools, so a connection to one pod is never reused for a later pod with the same IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    pub workspace_id: WorkspaceId,
    pub pod_uid: String,
    pub namespace: String,
    pub state: RouteState,
    /// Pod IP and workspace port; `None` while pending without an IP.
    #[serde(default)]
    pub addr: Option<SocketAddr>,
    /// The owner's subject (`nogoo9/user-sub`); `None` when auth was off at spawn.
    #[serde(default)]
    pub owner_sub: Option<String>,
    /// The pod names no port (no `nogoo9/workspace-port`): each gateway uses its own
    /// `--default-workspace-port` instead of `addr`'s port. Absent (false) from
    /// controls that predate it, whose port is then used as sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub port_is_default: bool,
}

impl Route {
    /// Routable now: Ready with an address.
    pub fn upstream(&self) -> Option<SocketAddr> {
        match self.state {
            RouteState::Ready => self.addr,
            RouteState::Pending => None,
        }
    }
}
