//! Last activity per workspace, kept by the gateway (recorded on the hot path, drained
//! to control every few seconds) and by control (merged from every gateway). One type
//! for both: a sharded map of workspace id → (pod UID, last active ms, changed since the
//! last drain).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::ids::WorkspaceId;
use crate::proto::Activity;

const SHARDS: usize = 16;

#[derive(Debug, Clone)]
struct Entry {
    pod_uid: String,
    last_ms: u64,
    dirty: bool,
}

#[derive(Default)]
pub struct ActivityLog {
    shards: [Mutex<HashMap<WorkspaceId, Entry>>; SHARDS],
}

impl ActivityLog {
    fn shard(&self, id: &WorkspaceId) -> &Mutex<HashMap<WorkspaceId, Entry>> {
        &self.shards[crate::hash::fnv1a(id.as_str().as_bytes()) as usize % SHARDS]
    }

    /// Activity on `id`'s pod at `now_ms` (later times win; a new pod replaces the old).
    pub fn record(&self, id: &WorkspaceId, pod_uid: &str, now_ms: u64) {
        let mut shard = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        match shard.get_mut(id) {
            Some(e) if e.pod_uid == pod_uid => {
                if now_ms > e.last_ms {
                    e.last_ms = now_ms;
                    e.dirty = true;
                }
            }
            _ => {
                shard.insert(
                    id.clone(),
                    Entry {
                        pod_uid: pod_uid.to_string(),
                        last_ms: now_ms,
                        dirty: true,
                    },
                );
            }
        }
    }

    /// Merges reports (from a gateway).
    pub fn merge(&self, reports: &[Activity]) {
        for a in reports {
            self.record(&a.workspace_id, &a.pod_uid, a.last_active_unix_ms);
        }
    }

    /// What changed since the last drain (at most `max`), marked clean; entries idle
    /// for longer than `forget_after_ms` are dropped.
    pub fn drain(&self, now_ms: u64, forget_after_ms: u64, max: usize) -> Vec<Activity> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, e| e.dirty || now_ms.saturating_sub(e.last_ms) < forget_after_ms);
            for (id, e) in shard.iter_mut().filter(|(_, e)| e.dirty) {
                if out.len() >= max {
                    return out;
                }
                e.dirty = false;
                out.push(Activity {
                    workspace_id: id.clone(),
                    pod_uid: e.pod_uid.clone(),
                    last_active_unix_ms: e.last_ms,
                });
            }
        }
        out
    }

    /// The last activity of `id`'s pod `pod_uid`.
    pub fn last_active(&self, id: &WorkspaceId, pod_uid: &str) -> Option<u64> {
        let shard = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        shard
            .get(id)
            .filter(|e| e.pod_uid == pod_uid)
            .map(|e| e.last_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> WorkspaceId {
        WorkspaceId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn activity_is_coalesced_until_drained() {
        let log = ActivityLog::default();
        for t in [100, 200, 150] {
            log.record(&id("a"), "uid-a", t);
        }
        log.record(&id("b"), "uid-b", 50);
        let mut batch = log.drain(300, 10_000, 100);
        batch.sort_by(|x, y| x.workspace_id.as_str().cmp(y.workspace_id.as_str()));
        assert_eq!(batch.len(), 2, "one report per workspace");
        assert_eq!(batch[0].last_active_unix_ms, 200, "the latest time wins");
        assert!(log.drain(300, 10_000, 100).is_empty(), "nothing new since");
        log.record(&id("a"), "uid-a", 400);
        assert_eq!(log.drain(400, 10_000, 100).len(), 1);
        assert_eq!(log.last_active(&id("a"), "uid-a"), Some(400));
        assert_eq!(
            log.last_active(&id("a"), "uid-old"),
            None,
            "another pod's activity"
        );
        log.record(&id("a"), "uid-new", 10);
        assert_eq!(
            log.last_active(&id("a"), "uid-new"),
            Some(10),
            "a new pod starts over"
        );
        // Idle entries are forgotten, and a drain is bounded.
        assert!(log.drain(100_000, 1_000, 100).len() <= 1);
        assert_eq!(log.last_active(&id("b"), "uid-b"), None);
        for i in 0..10 {
            log.record(&id(&format!("w{i}")), "u", 1);
        }
        assert_eq!(log.drain(2, 10_000, 3).len(), 3);
    }
}
