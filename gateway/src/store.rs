//! The route table as the proxy sees it: one `ArcSwap` holding the whole table.
//!
//! **Invariant:** the hot path only calls [`RouteStore::load`] (lock-free, no
//! allocation); only the sync task calls [`RouteStore::replace`]. The table is a
//! persistent map, so publishing a new version never copies it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, Guard};
use shared::table::RouteTable;

#[derive(Debug)]
pub struct RouteStore {
    current: ArcSwap<RouteTable>,
    loaded: AtomicBool,
    /// Wakes requests that arrived before the first table (see `wait_loaded`).
    first_table: tokio::sync::Notify,
    /// Counts tables published, for requests waiting on a change (`wake.rs`).
    published: tokio::sync::watch::Sender<u64>,
}

impl Default for RouteStore {
    fn default() -> Self {
        RouteStore {
            current: ArcSwap::from_pointee(RouteTable::default()),
            loaded: AtomicBool::new(false),
            first_table: tokio::sync::Notify::new(),
            published: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl RouteStore {
    pub fn new() -> Arc<Self> {
        Arc::new(RouteStore::default())
    }

    /// The current table (lock-free).
    pub fn load(&self) -> Guard<Arc<RouteTable>> {
        self.current.load()
    }

    /// Publishes a new table; the first call marks the store loaded (readiness).
    pub fn replace(&self, table: RouteTable) {
        self.current.store(Arc::new(table));
        if !self.loaded.swap(true, Ordering::AcqRel) {
            self.first_table.notify_waiters();
        }
        self.published.send_modify(|n| *n += 1);
    }

    /// Changes whenever a table is published (off the hot path: only waits use it).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Waits up to `limit` for the first table. A gateway that just started (or just
    /// took the listener over in an upgrade) gets its snapshot within milliseconds;
    /// requests arriving in that gap wait for it instead of failing.
    pub async fn wait_loaded(&self, limit: std::time::Duration) -> bool {
        if self.is_loaded() {
            return true;
        }
        let notified = self.first_table.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_loaded() {
            return true;
        }
        tokio::time::timeout(limit, notified).await.is_ok() || self.is_loaded()
    }

    /// Whether a snapshot was ever applied (before that, requests get 503).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}
