//! Limits and timeouts: how big a request head may be, how long an upstream may take,
//! how long an upgraded (WebSocket) or streaming connection may sit idle, and how many
//! connections one workspace may hold at once (so one busy workspace cannot take every
//! file descriptor the gateway has).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
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
    /// How long the owner's request to a suspended workspace waits for it to wake
    /// (503 with `Retry-After` after it).
    pub wake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 32 * 1024,
            upstream_timeout: Duration::from_secs(60),
            downstream_timeout: Duration::from_secs(60),
            upgraded_idle_timeout: Duration::from_secs(300),
            max_connections_per_workspace: 1000,
            upstream_pool_size: DEFAULT_UPSTREAM_POOL_SIZE,
            wake_timeout: Duration::from_secs(30),
        }
    }
}

/// Idle upstream connections kept by default: one for each of 100,000 workspaces, so no
/// deployment size makes the pool evict connections that are about to be reused (an
/// eviction means a new connection per request).
pub const DEFAULT_UPSTREAM_POOL_SIZE: usize = 100_000;

/// The pool size the process can afford: each idle connection holds a file descriptor,
/// so the pool gets at most three quarters of the open-file limit (the rest is for
/// clients, connections in use and the control socket). `None`: `requested` fits.
pub fn affordable_pool_size(requested: usize, open_file_limit: u64) -> Option<usize> {
    let budget = usize::try_from(open_file_limit / 4 * 3)
        .unwrap_or(usize::MAX)
        .max(1);
    (requested > budget).then_some(budget)
}

/// The size of a request head as it came in (request line and headers).
pub fn head_bytes(req: &pingora::http::RequestHeader) -> usize {
    let line = req.method.as_str().len() + req.raw_path().len() + 12;
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
            .get(http::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"))
}

const SHARDS: usize = 16;

/// Open connections per workspace. A `Slot` is held for the life of a request (or an
/// upgraded connection) and gives its place back when dropped. Counts that fall to zero
/// stay (so the next request allocates nothing) until a shard has grown past twice its
/// size after the last sweep; then the zeros go.
///
/// Taking a place looks the workspace up under its shard's lock (so two requests cannot
/// both take the last place); giving it back is one atomic decrement on the count the slot
/// holds, with no lock and no lookup, since that runs once per request too.
#[derive(Default)]
pub struct ConnectionCounts {
    shards: [Mutex<Shard>; SHARDS],
}

#[derive(Default)]
struct Shard {
    counts: HashMap<Arc<str>, Arc<AtomicU32>>,
    /// Entries after the last sweep of zeros.
    swept_len: usize,
}

pub struct Slot {
    open: Arc<AtomicU32>,
}

impl ConnectionCounts {
    fn shard(&self, workspace: &str) -> &Mutex<Shard> {
        &self.shards[shared::hash::fnv1a(workspace.as_bytes()) as usize % SHARDS]
    }

    /// A place for one more connection to `workspace`, unless it already has `cap`.
    pub fn acquire(&self, workspace: &str, cap: u32) -> Option<Slot> {
        let mut shard = self
            .shard(workspace)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let open = match shard.counts.get(workspace) {
            Some(open) => open.clone(),
            None => {
                if shard.counts.len() >= 64 && shard.counts.len() >= 2 * shard.swept_len {
                    // A zero count has no slot: nobody can be about to decrement it.
                    shard.counts.retain(|_, n| n.load(Ordering::Acquire) > 0);
                    shard.swept_len = shard.counts.len();
                }
                let open = Arc::new(AtomicU32::new(0));
                shard.counts.insert(Arc::from(workspace), open.clone());
                open
            }
        };
        // Increments happen under the shard lock only, so this check cannot be raced
        // past the cap; a concurrent release can only make the count smaller.
        if open.load(Ordering::Acquire) >= cap {
            return None;
        }
        open.fetch_add(1, Ordering::AcqRel);
        Some(Slot { open })
    }

    pub fn open(&self, workspace: &str) -> u32 {
        let shard = self
            .shard(workspace)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        shard
            .counts
            .get(workspace)
            .map_or(0, |n| n.load(Ordering::Acquire))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
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
        assert_eq!(counts.open("b"), 0, "given back when dropped");
    }

    #[test]
    fn racing_requests_never_hold_more_than_the_cap() {
        let counts = Arc::new(ConnectionCounts::default());
        let held = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (counts, held, most) = (counts.clone(), held.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        if let Some(slot) = counts.acquire("w", 3) {
                            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            held.fetch_sub(1, Ordering::SeqCst);
                            drop(slot);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join()
                .unwrap_or_else(|_| panic!("a racing thread panicked"));
        }
        assert!(most.load(Ordering::SeqCst) <= 3, "{most:?} held at once");
        assert_eq!(counts.open("w"), 0, "every place given back");
    }

    #[test]
    fn idle_counts_are_swept_as_the_map_grows() {
        let counts = Arc::new(ConnectionCounts::default());
        for i in 0..20_000 {
            drop(counts.acquire(&format!("ws-{i}"), 1));
        }
        let held = counts.acquire("held", 1);
        for i in 20_000..40_000 {
            drop(counts.acquire(&format!("ws-{i}"), 1));
        }
        let total: usize = counts
            .shards
            .iter()
            .map(|s| s.lock().map(|s| s.counts.len()).unwrap_or(0))
            .sum();
        assert!(total < 20_000, "zeros are swept: {total} entries");
        assert_eq!(counts.open("held"), 1, "a live count survives every sweep");
        assert!(counts.acquire("held", 1).is_none());
        drop(held);
    }

    #[test]
    fn the_pool_fits_in_the_open_file_limit() {
        assert_eq!(affordable_pool_size(100_000, 1_048_576), None);
        assert_eq!(affordable_pool_size(100_000, 20_000), Some(15_000));
        assert_eq!(affordable_pool_size(1_000, 20_000), None);
        assert_eq!(affordable_pool_size(10, 1), Some(1));
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
