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
    /// How the gateway serves it to browsers (fields added after v1; not in the table
    /// hash, so gateways of the previous release still agree on it).
    #[serde(flatten)]
    pub web: WebOptions,
}

/// Per-workspace serving options, from the pod (and so from its template).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WebOptions {
    /// Container ports the pod declares: host routing's `<port>-<id>` form reaches only
    /// these. Empty from controls that predate it (then no port form matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Under path routing, rewrite the workspace's `Location` and `Set-Cookie` `Path`
    /// under `/route/<id>/` (`nogoo9/rewrite-responses`, default on).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub rewrite_responses: bool,
    /// The `Host` the workspace sees (`nogoo9/upstream-host`).
    #[serde(default, skip_serializing_if = "UpstreamHost::is_public")]
    pub upstream_host: UpstreamHost,
    /// Suspended: no pod; its files and spawn record are kept (`idle-action: suspend`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// The owner's request wakes it (`nogoo9/wake-on-request`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wake_on_request: bool,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            ports: Vec::new(),
            rewrite_responses: true,
            upstream_host: UpstreamHost::Public,
            suspended: false,
            wake_on_request: false,
        }
    }
}

/// The `Host` header a workspace sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamHost {
    /// The client's `Host` (what the browser addressed).
    #[default]
    Public,
    /// `podIP:port`, which some apps (ttyd) insist on.
    Pod,
}

impl UpstreamHost {
    pub fn is_public(&self) -> bool {
        *self == UpstreamHost::Public
    }

    /// The annotation's value (`public` or `pod`).
    pub fn parse(value: &str) -> Option<UpstreamHost> {
        match value {
            "public" => Some(UpstreamHost::Public),
            "pod" => Some(UpstreamHost::Pod),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
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
