//! Limits and timeouts: how big a request head may be, how long an upstream may take,
//! how long an upgraded (WebSocket) or streaming connection may sit idle, and how many
//! connections one workspace may hold at once (so one busy workspace cannot take every
//! file descriptor the gateway has).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line plus headers, in bytes (431 above it).
    pub max_header_bytes: usize,
    /// Connect, then each read/write of an ordinary request to the upstream.
    pub upstream_timeout: Duration,
    /// Reads from the client while a request is in flight.
    pub downstream_timeout: Duration,
    /// Idle time allowed on WebSocket upgrades and event streams, each direction.
    pub upgraded_idle_timeout: Duration,
    /// Concurrent requests and upgraded connections per workspace (503 above it).
    pub max_connections_per_workspace: u32,
    /// Idle upstream connections kept for reuse, across all workspaces. Pingora's
    /// default (128) is an LRU far smaller than the number of workspaces: with traffic
    /// over 1,000 of them, no connection was ever reused.
    pub upstream_pool_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 32 * 1024,
            upstream_timeout: Duration::from_secs(60),
            downstream_timeout: Duration::from_secs(60),
            upgraded_idle_timeout: Duration::from_secs(300),
            max_connections_per_workspace: 1000,
            upstream_pool_size: 8192,
        }
    }
}

/// The size of a request head as it came in (request line and headers).
pub fn head_bytes(req: &pingora::http::RequestHeader) -> usize {
    let line = req.method.as_str().len() + req.uri.to_string().len() + 12;
    req.headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

/// A WebSocket upgrade or an event stream: held open, so it gets the idle timeouts
/// instead of the per-request ones.
pub fn is_long_lived(req: &pingora::http::RequestHeader, upgrade: bool) -> bool {
    upgrade
        || req
            .headers
            .get("accept")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"))
}

const SHARDS: usize = 16;

/// Open connections per workspace. A `Slot` is held for the life of a request (or an
/// upgraded connection) and gives its place back when dropped.
#[derive(Default)]
pub struct ConnectionCounts {
    shards: [Mutex<HashMap<String, u32>>; SHARDS],
}

pub struct Slot {
    counts: Arc<ConnectionCounts>,
    workspace: String,
}

impl ConnectionCounts {
    fn shard(&self, workspace: &str) -> &Mutex<HashMap<String, u32>> {
        &self.shards[shared::hash::fnv1a(workspace.as_bytes()) as usize % SHARDS]
    }

    /// A place for one more connection to `workspace`, unless it already has `cap`.
    pub fn acquire(self: &Arc<Self>, workspace: &str, cap: u32) -> Option<Slot> {
        let mut shard = self
            .shard(workspace)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = shard.entry(workspace.to_string()).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: self.clone(),
            workspace: workspace.to_string(),
        })
    }

    pub fn open(&self, workspace: &str) -> u32 {
        let shard = self
            .shard(workspace)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        shard.get(workspace).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut shard = self
            .counts
            .shard(&self.workspace)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = shard.get_mut(&self.workspace) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Idle workspaces cost nothing.
                shard.remove(&self.workspace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_workspace_and_given_back() {
        let counts = Arc::new(ConnectionCounts::default());
        let a1 = counts.acquire("a", 2);
        let a2 = counts.acquire("a", 2);
        assert!(a1.is_some() && a2.is_some());
        assert!(counts.acquire("a", 2).is_none(), "third over the cap");
        assert!(
            counts.acquire("b", 2).is_some(),
            "other workspaces unaffected"
        );
        drop(a1);
        assert_eq!(counts.open("a"), 1);
        assert!(counts.acquire("a", 2).is_some());
        drop(a2);
        assert_eq!(counts.open("b"), 0, "dropped at once when unused");
    }

    #[test]
    fn head_size_counts_line_and_headers() {
        let mut r = pingora::http::RequestHeader::build("GET", b"/route/x/", None)
            .unwrap_or_else(|e| panic!("{e}"));
        let small = head_bytes(&r);
        r.append_header("x-big", "y".repeat(1000))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(head_bytes(&r) >= small + 1000);
    }
}
