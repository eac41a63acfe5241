//! The route table both ends of the channel hold, and the only ways it changes: control
//! `commit`s a batch of changes as the next version, a gateway `apply`s that same batch
//! as a delta. Both run `apply_changes`, and the version arithmetic lives here alone, so
//! control and every gateway cannot disagree.
//!
//! The map is persistent (`imbl`): a clone is O(1) and an update copies only the path to
//! the changed entry, so a gateway can apply 1,000 updates/s to a 100,000-route table and
//! publish each version behind an `ArcSwap` without copying the table.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::WorkspaceId;
use crate::route::Route;

/// One change to the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Add or replace the workspace's route.
    Upsert { route: Route },
    /// Remove the workspace's route, but only if it still points at `pod_uid`: a late
    /// removal of an old pod can never delete the route of its replacement.
    Remove {
        workspace_id: WorkspaceId,
        pod_uid: String,
    },
}

/// Why a delta was not applied (the gateway then asks for a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("delta for epoch {got}, table is at epoch {have}")]
    Epoch { have: u64, got: u64 },
    #[error("delta based on version {base}, table is at version {have}")]
    Base { have: u64, base: u64 },
    #[error("delta version {version} does not follow its base {base}")]
    NotIncreasing { base: u64, version: u64 },
}

/// `(epoch, version)`: the epoch changes when control restarts (versions restart with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableVersion {
    pub epoch: u64,
    pub version: u64,
}

/// All routes at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    epoch: u64,
    version: u64,
    routes: imbl::HashMap<WorkspaceId, Arc<Route>>,
    /// [`RouteTable::hash`], kept up to date change by change: recomputing it per version
    /// cost O(routes) each time, which stalled the feed under a burst of updates.
    digest: u64,
}

impl RouteTable {
    pub fn new(epoch: u64) -> Self {
        RouteTable {
            epoch,
            version: 0,
            routes: imbl::HashMap::new(),
            digest: 0,
        }
    }

    pub fn from_routes(epoch: u64, version: u64, routes: impl IntoIterator<Item = Route>) -> Self {
        let mut table = RouteTable::new(epoch);
        table.version = version;
        for route in routes {
            table.insert(route);
        }
        table
    }

    /// Changes with every control start (versions restart with it).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn at(&self) -> TableVersion {
        TableVersion {
            epoch: self.epoch,
            version: self.version,
        }
    }

    pub fn get(&self, id: &WorkspaceId) -> Option<&Arc<Route>> {
        self.routes.get(id)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    /// Applies `changes` as the next version and returns it (control's side; a gateway
    /// applies the same batch with [`RouteTable::apply`]). An empty batch is no version.
    pub fn commit(&mut self, changes: &[Change]) -> u64 {
        if changes.is_empty() {
            return self.version;
        }
        self.apply_changes(changes);
        self.version += 1;
        self.version
    }

    fn apply_changes(&mut self, changes: &[Change]) {
        for change in changes {
            self.apply_change(change);
        }
    }

    /// Every route filed under its own id, and the running digest equal to a recount.
    /// O(routes), so it is for tests (property tests run it after every change).
    pub fn check_invariants(&self) -> bool {
        let mut digest = 0u64;
        for (id, route) in &self.routes {
            if &route.workspace_id != id {
                return false;
            }
            digest = digest.wrapping_add(route_hash(route));
        }
        digest == self.digest
    }

    fn apply_change(&mut self, change: &Change) {
        match change {
            Change::Upsert { route } => self.insert(route.clone()),
            Change::Remove {
                workspace_id,
                pod_uid,
            } => {
                if self
                    .routes
                    .get(workspace_id)
                    .is_some_and(|r| &r.pod_uid == pod_uid)
                    && let Some(old) = self.routes.remove(workspace_id)
                {
                    self.digest = self.digest.wrapping_sub(route_hash(&old));
                }
            }
        }
    }

    fn insert(&mut self, route: Route) {
        self.digest = self.digest.wrapping_add(route_hash(&route));
        if let Some(old) = self
            .routes
            .insert(route.workspace_id.clone(), Arc::new(route))
        {
            self.digest = self.digest.wrapping_sub(route_hash(&old));
        }
    }

    /// Applies a delta from `base` to `version`, or refuses it whole.
    pub fn apply(
        &mut self,
        epoch: u64,
        base: u64,
        version: u64,
        changes: &[Change],
    ) -> Result<(), ApplyError> {
        if epoch != self.epoch {
            return Err(ApplyError::Epoch {
                have: self.epoch,
                got: epoch,
            });
        }
        if base != self.version {
            return Err(ApplyError::Base {
                have: self.version,
                base,
            });
        }
        if version <= base {
            return Err(ApplyError::NotIncreasing { base, version });
        }
        self.apply_changes(changes);
        self.version = version;
        Ok(())
    }

    /// The changes that turn `self` into `other` (upserts for new or different routes,
    /// removals fenced by the old pod UID).
    pub fn diff(&self, other: &RouteTable) -> Vec<Change> {
        let mut changes = Vec::new();
        for (id, old) in &self.routes {
            if !other.routes.contains_key(id) {
                changes.push(Change::Remove {
                    workspace_id: id.clone(),
                    pod_uid: old.pod_uid.clone(),
                });
            }
        }
        for (id, new) in &other.routes {
            if self.routes.get(id).is_none_or(|old| old != new) {
                changes.push(Change::Upsert {
                    route: (**new).clone(),
                });
            }
        }
        changes
    }

    /// An order-independent digest of the routes (a sum of per-route hashes), exchanged
    /// in acks to catch drift. O(1): maintained as routes come and go.
    pub fn hash(&self) -> u64 {
        self.digest
    }
}

/// A route's hash covers the v1 fields only (serialized as a v1 gateway does): a gateway
/// of the previous release drops fields it does not know, and must still agree.
fn route_hash(route: &Route) -> u64 {
    #[derive(Serialize)]
    struct V1<'a> {
        workspace_id: &'a WorkspaceId,
        pod_uid: &'a str,
        namespace: &'a str,
        state: crate::route::RouteState,
        addr: Option<std::net::SocketAddr>,
        owner_sub: Option<&'a str>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        port_is_default: bool,
    }
    let v1 = V1 {
        workspace_id: &route.workspace_id,
        pod_uid: &route.pod_uid,
        namespace: &route.namespace,
        state: route.state,
        addr: route.addr,
        owner_sub: route.owner_sub.as_deref(),
        port_is_default: route.port_is_default,
    };
    mix(crate::hash::fnv1a(
        &serde_json::to_vec(&v1).unwrap_or_default(),
    ))
}

/// A finalizer so sums of hashes of similar routes do not cancel out.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::RouteState;

    fn route(id: &str, uid: &str, ip: u8) -> Route {
        Route {
            workspace_id: WorkspaceId::parse(id).unwrap_or_else(|e| panic!("{e}")),
            pod_uid: uid.into(),
            namespace: "default".into(),
            state: RouteState::Ready,
            addr: Some(([127, 10, 0, ip], 3000).into()),
            owner_sub: Some("alice".into()),
            port_is_default: false,
            web: Default::default(),
        }
    }

    /// A small deterministic generator (no extra dependency for property tests).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn table(&mut self) -> RouteTable {
            let n = self.next() % 20;
            RouteTable::from_routes(
                1,
                0,
                (0..n).map(|_| {
                    let id = format!("w{}", self.next() % 30);
                    let uid = format!("u{}", self.next() % 3);
                    route(&id, &uid, (self.next() % 250) as u8)
                }),
            )
        }
    }

    #[test]
    fn applying_the_diff_reproduces_the_target() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..500 {
            let (a, b) = (rng.table(), rng.table());
            let mut replay = a.clone();
            replay
                .apply(1, 0, 1, &a.diff(&b))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(replay.routes, b.routes);
            assert!(replay.check_invariants());
            assert_eq!(replay.hash(), b.hash());
            assert!(a.diff(&a).is_empty());
        }
    }

    #[test]
    fn the_running_digest_equals_a_full_recount() {
        let recount = |t: &RouteTable| {
            t.routes()
                .fold(0u64, |acc, r| acc.wrapping_add(route_hash(r)))
        };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut t = rng.table();
        for v in 1..500u64 {
            let target = rng.table();
            let mut changes = t.diff(&target);
            // Stale removals (wrong pod UID) must leave the digest alone too.
            changes.push(Change::Remove {
                workspace_id: WorkspaceId::parse(&format!("w{}", rng.next() % 30))
                    .unwrap_or_else(|e| panic!("{e}")),
                pod_uid: "not-this-pod".into(),
            });
            t.apply(1, v - 1, v, &changes)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.hash(), recount(&t), "at version {v}");
            assert!(t.check_invariants());
            assert_eq!(t.hash(), target.hash());
        }
    }

    #[test]
    fn removals_are_fenced_by_pod_uid() {
        let mut t = RouteTable::from_routes(1, 5, [route("ws", "new-pod", 2)]);
        let stale = Change::Remove {
            workspace_id: WorkspaceId::parse("ws").unwrap_or_else(|e| panic!("{e}")),
            pod_uid: "old-pod".into(),
        };
        t.apply(1, 5, 6, &[stale]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.len(),
            1,
            "a stale removal must not delete the new pod's route"
        );
        let current = Change::Remove {
            workspace_id: WorkspaceId::parse("ws").unwrap_or_else(|e| panic!("{e}")),
            pod_uid: "new-pod".into(),
        };
        t.apply(1, 6, 7, &[current])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(t.is_empty());
    }

    #[test]
    fn deltas_must_follow_the_table() {
        let mut t = RouteTable::from_routes(3, 10, []);
        assert_eq!(
            t.apply(2, 10, 11, &[]),
            Err(ApplyError::Epoch { have: 3, got: 2 })
        );
        assert_eq!(
            t.apply(3, 9, 11, &[]),
            Err(ApplyError::Base { have: 10, base: 9 })
        );
        assert_eq!(
            t.apply(3, 10, 10, &[]),
            Err(ApplyError::NotIncreasing {
                base: 10,
                version: 10
            })
        );
        assert!(t.apply(3, 10, 11, &[]).is_ok());
        assert_eq!(
            t.at(),
            TableVersion {
                epoch: 3,
                version: 11
            }
        );
    }

    #[test]
    fn the_hash_ignores_order_and_sees_every_field() {
        let a = RouteTable::from_routes(1, 1, [route("a", "1", 1), route("b", "2", 2)]);
        let b = RouteTable::from_routes(9, 9, [route("b", "2", 2), route("a", "1", 1)]);
        assert_eq!(a.hash(), b.hash());
        let c = RouteTable::from_routes(1, 1, [route("a", "1", 1), route("b", "2", 3)]);
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn fields_after_v1_are_not_hashed_so_previous_gateways_agree() {
        let plain = route("a", "1", 1);
        let mut served = plain.clone();
        served.web.ports = vec![3000, 8080];
        served.web.rewrite_responses = false;
        served.web.upstream_host = crate::route::UpstreamHost::Pod;
        // What a gateway of the previous release makes of the frame: unknown fields dropped.
        let mut json = serde_json::to_value(&served).unwrap_or_default();
        for k in ["ports", "rewrite_responses", "upstream_host"] {
            json.as_object_mut().map(|o| o.remove(k));
        }
        let previous: Route = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(previous, plain);
        assert_eq!(
            RouteTable::from_routes(1, 1, [served]).hash(),
            RouteTable::from_routes(1, 1, [plain]).hash()
        );
    }
}
