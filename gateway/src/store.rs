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
}

impl Default for RouteStore {
    fn default() -> Self {
        RouteStore {
            current: ArcSwap::from_pointee(RouteTable::default()),
            loaded: AtomicBool::new(false),
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
        self.loaded.store(true, Ordering::Release);
    }

    /// Whether a snapshot was ever applied (before that, requests get 503).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}
