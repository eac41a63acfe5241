//! The versioned object store: the simulated etcd.
//!
//! One global revision counter (like etcd's), a persistent ordered map per kind so a list
//! can read a consistent snapshot without copying, a bounded ring of past snapshots (for
//! `resourceVersionMatch=Exact` and `continue` tokens) and a bounded event history (for
//! resuming watches). Anything older than what is retained answers 410 Expired, as a
//! compacted etcd does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use imbl::OrdMap;
use serde_json::Value;
use tokio::sync::broadcast;

use super::selectors::SelectableFields;
use super::status::{ApiError, ApiResult};

/// The API group of leases.
pub const COORDINATION_GROUP: &str = "coordination.k8s.io";

/// The resource kinds the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Pod,
    ConfigMap,
    ServiceAccount,
    Event,
    Lease,
    Secret,
    PersistentVolumeClaim,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::ConfigMap,
        Kind::ServiceAccount,
        Kind::Event,
        Kind::Lease,
        Kind::Secret,
        Kind::PersistentVolumeClaim,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The plural resource name used in URLs and RBAC.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::ServiceAccount => "serviceaccounts",
            Kind::Event => "events",
            Kind::Lease => "leases",
            Kind::Secret => "secrets",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Lease => COORDINATION_GROUP,
            _ => "",
        }
    }

    /// `apiVersion` of its objects.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Lease => "coordination.k8s.io/v1",
            _ => "v1",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::ConfigMap => "ConfigMap",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Event => "Event",
            Kind::Lease => "Lease",
            Kind::Secret => "Secret",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
        }
    }

    pub fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    /// Whether a DELETE answers the deleted object rather than a `Status` (the real API
    /// server's registries with `ReturnDeletedObject`: pods and service accounts among
    /// the kinds simulated here; a namespace answers itself while it terminates).
    pub fn returns_deleted_object(self) -> bool {
        matches!(
            self,
            Kind::Pod | Kind::ServiceAccount | Kind::Secret | Kind::PersistentVolumeClaim
        )
    }

    /// A core-group resource by its plural name.
    pub fn from_resource(resource: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group().is_empty() && k.resource() == resource)
    }

    /// A resource of `group` by its plural name.
    pub fn from_group_resource(group: &str, resource: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.resource() == resource)
    }
}

/// `namespace/name`; the namespace is empty for cluster-scoped objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key as it appears in continue tokens.
    pub fn encode(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (ns, name) = s.split_once('/')?;
        Some(ObjKey::new(ns, name))
    }
}

/// One stored object: its canonical JSON (with `metadata.resourceVersion` set) plus the
/// few fields selectors need, so lists and watches never re-parse it.
#[derive(Debug)]
pub struct StoredObj {
    pub key: ObjKey,
    pub rv: u64,
    pub uid: String,
    pub json: Bytes,
    pub labels: BTreeMap<String, String>,
    pub fields: SelectableFields,
    /// `metadata.deletionTimestamp` is set: the object is being deleted gracefully.
    pub terminating: bool,
}

impl StoredObj {
    fn build(key: ObjKey, rv: u64, mut value: Value) -> ApiResult<Self> {
        let meta = value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::internal("stored object has no metadata"))?;
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        let terminating = meta.get("deletionTimestamp").is_some_and(|t| !t.is_null());
        let uid = meta
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let str_at = |ptr: &str| {
            value
                .pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let fields = SelectableFields {
            name: key.name.to_string(),
            namespace: key.namespace.to_string(),
            phase: str_at("/status/phase"),
            node_name: str_at("/spec/nodeName"),
        };
        let json = serde_json::to_vec(&value)
            .map_err(|e| ApiError::internal(format!("encoding object: {e}")))?;
        Ok(StoredObj {
            key,
            rv,
            uid,
            json: Bytes::from(json),
            labels,
            fields,
            terminating,
        })
    }

    /// The object as a JSON value (parsed from the stored bytes).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The same object re-stamped with another resourceVersion (DELETED events carry the
    /// revision of the delete, as on the real server).
    fn restamped(&self, rv: u64) -> ApiResult<Self> {
        StoredObj::build(self.key.clone(), rv, self.value())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to watchers. `old` lets a filtered watch
/// turn a MODIFIED into ADDED/DELETED when an object enters or leaves its selector.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: Kind,
    pub etype: EventType,
    pub obj: Arc<StoredObj>,
    pub old: Option<Arc<StoredObj>>,
}

pub type Objects = OrdMap<ObjKey, Arc<StoredObj>>;

struct KindState {
    objects: Objects,
    /// `(rv, state after that revision)`; the front is the oldest readable state.
    snapshots: VecDeque<(u64, Objects)>,
    history: VecDeque<Arc<Event>>,
    /// Watches may resume from any revision >= this one.
    history_floor: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

struct Inner {
    rv: u64,
    kinds: Vec<KindState>,
}

/// What a mutation closure decides to do with the current object.
pub enum Change {
    Put(Value),
    Delete,
    Keep,
}

/// The result of [`Store::mutate`].
#[derive(Debug)]
pub enum Outcome {
    Stored { obj: Arc<StoredObj>, created: bool },
    Deleted(Arc<StoredObj>),
    Unchanged(Option<Arc<StoredObj>>),
}

/// Where a read should come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    Latest,
    Exact(u64),
    NotOlderThan(u64),
}

/// What a new watch starts from.
pub enum WatchStart {
    /// Resume after this revision: the history since then is replayed.
    Resume(Vec<Arc<Event>>),
    /// Start now: the current objects are sent as synthetic ADDED events.
    Now(Objects),
}

pub struct Store {
    inner: Mutex<Inner>,
    history_limit: usize,
}

/// Capacity of each kind's broadcast channel; a watcher further behind is closed (the
/// real server also drops watchers that cannot keep up) and resumes from its last revision.
const WATCH_CHANNEL_CAPACITY: usize = 65_536;

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let start_rv = 1;
        let kinds = Kind::ALL
            .iter()
            .map(|_| KindState {
                objects: OrdMap::new(),
                snapshots: VecDeque::from([(start_rv, OrdMap::new())]),
                history: VecDeque::new(),
                history_floor: start_rv,
                tx: broadcast::channel(WATCH_CHANNEL_CAPACITY).0,
            })
            .collect();
        Store {
            inner: Mutex::new(Inner {
                rv: start_rv,
                kinds,
            }),
            history_limit: history_limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated (every update
        // is built before it is swapped in), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current global revision.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, kind: Kind, key: &ObjKey) -> Option<Arc<StoredObj>> {
        self.lock().kinds[kind.index()].objects.get(key).cloned()
    }

    /// Atomically reads the current object, lets `f` decide, and applies the decision,
    /// assigning the next revision and notifying watchers.
    pub fn mutate<F>(&self, kind: Kind, key: &ObjKey, f: F) -> ApiResult<Outcome>
    where
        F: FnOnce(Option<&Arc<StoredObj>>) -> ApiResult<Change>,
    {
        let mut inner = self.lock();
        let current = inner.kinds[kind.index()].objects.get(key).cloned();
        let change = f(current.as_ref())?;
        let next_rv = inner.rv + 1;
        let (event, outcome) = match change {
            Change::Keep => return Ok(Outcome::Unchanged(current)),
            Change::Put(value) => {
                if let Some(old) = &current {
                    // A no-op write keeps its revision, like the real server.
                    let same = StoredObj::build(key.clone(), old.rv, value.clone())?;
                    if same.json == old.json {
                        return Ok(Outcome::Unchanged(current));
                    }
                }
                let obj = Arc::new(StoredObj::build(key.clone(), next_rv, value)?);
                let etype = if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                let created = current.is_none();
                (
                    Event {
                        rv: next_rv,
                        kind,
                        etype,
                        obj: obj.clone(),
                        old: current,
                    },
                    Outcome::Stored { obj, created },
                )
            }
            Change::Delete => {
                let Some(old) = current else {
                    return Ok(Outcome::Unchanged(None));
                };
                let obj = Arc::new(old.restamped(next_rv)?);
                (
                    Event {
                        rv: next_rv,
                        kind,
                        etype: EventType::Deleted,
                        obj: obj.clone(),
                        old: Some(old),
                    },
                    Outcome::Deleted(obj),
                )
            }
        };
        inner.rv = next_rv;
        let limit = self.history_limit;
        let state = &mut inner.kinds[kind.index()];
        match event.etype {
            EventType::Deleted => {
                state.objects.remove(key);
            }
            _ => {
                state.objects.insert(key.clone(), event.obj.clone());
            }
        }
        state.snapshots.push_back((next_rv, state.objects.clone()));
        while state.snapshots.len() > limit + 1 {
            state.snapshots.pop_front();
        }
        let event = Arc::new(event);
        state.history.push_back(event.clone());
        while state.history.len() > limit {
            if let Some(dropped) = state.history.pop_front() {
                state.history_floor = dropped.rv;
            }
        }
        // No receivers is fine: nobody is watching this kind.
        let _ = state.tx.send(event);
        Ok(outcome)
    }

    /// A consistent view of one kind, with the revision it represents.
    pub fn read(&self, kind: Kind, at: ReadAt) -> ApiResult<(u64, Objects)> {
        let inner = self.lock();
        let state = &inner.kinds[kind.index()];
        match at {
            ReadAt::Latest => Ok((inner.rv, state.objects.clone())),
            ReadAt::NotOlderThan(rv) if rv <= inner.rv => Ok((inner.rv, state.objects.clone())),
            ReadAt::NotOlderThan(rv) => Err(ApiError::new(
                super::status::Reason::Timeout,
                format!("Too large resource version: {rv}, current: {}", inner.rv),
            )),
            ReadAt::Exact(rv) if rv > inner.rv => Err(ApiError::new(
                super::status::Reason::Timeout,
                format!("Too large resource version: {rv}, current: {}", inner.rv),
            )),
            ReadAt::Exact(rv) => {
                let oldest = state.snapshots.front().map_or(0, |(r, _)| *r);
                if rv < oldest {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({oldest})"
                    )));
                }
                let idx = state.snapshots.partition_point(|(r, _)| *r <= rv);
                let objects = state
                    .snapshots
                    .get(idx.saturating_sub(1))
                    .map(|(_, o)| o.clone())
                    .unwrap_or_default();
                Ok((rv, objects))
            }
        }
    }

    /// Subscribes to a kind. With `from = Some(rv)` the history after `rv` is replayed (410
    /// Expired when it is no longer retained); with `None` the current state is returned.
    /// Subscribing and reading happen under one lock, so no event is missed or repeated.
    pub fn watch(
        &self,
        kind: Kind,
        from: Option<u64>,
    ) -> ApiResult<(u64, WatchStart, broadcast::Receiver<Arc<Event>>)> {
        let inner = self.lock();
        let state = &inner.kinds[kind.index()];
        let rx = state.tx.subscribe();
        match from {
            Some(rv) => {
                if rv < state.history_floor {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        state.history_floor
                    )));
                }
                let start = state.history.partition_point(|e| e.rv <= rv);
                let backlog = state.history.iter().skip(start).cloned().collect();
                Ok((inner.rv, WatchStart::Resume(backlog), rx))
            }
            None => Ok((inner.rv, WatchStart::Now(state.objects.clone()), rx)),
        }
    }

    /// Number of objects of a kind (for metrics and benchmarks).
    pub fn count(&self, kind: Kind) -> usize {
        self.lock().kinds[kind.index()].objects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(store: &Store, name: &str, data: &str) -> Arc<StoredObj> {
        let key = ObjKey::new("default", name);
        let value = json!({"metadata": {"name": name, "namespace": "default", "uid": name}, "data": {"k": data}});
        match store.mutate(Kind::ConfigMap, &key, |_| Ok(Change::Put(value))) {
            Ok(Outcome::Stored { obj, .. }) => obj,
            Ok(Outcome::Unchanged(Some(obj))) => obj,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn revisions_are_global_and_no_op_writes_keep_theirs() {
        let store = Store::new(100);
        let a = put(&store, "a", "1");
        let b = put(&store, "b", "1");
        assert_eq!(b.rv, a.rv + 1);
        let again = put(&store, "a", "1");
        assert_eq!(again.rv, a.rv, "a no-op write must not bump the revision");
        assert_eq!(store.current_rv(), b.rv);
        let v = again.value();
        assert_eq!(v["metadata"]["resourceVersion"], a.rv.to_string());
    }

    #[test]
    fn exact_reads_see_the_past_until_it_is_compacted() {
        let store = Store::new(3);
        let a1 = put(&store, "a", "1");
        put(&store, "a", "2");
        let (rv, objs) = store
            .read(Kind::ConfigMap, ReadAt::Exact(a1.rv))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rv, a1.rv);
        let seen = objs.get(&ObjKey::new("default", "a")).map(|o| o.value());
        assert_eq!(seen.map(|v| v["data"]["k"].clone()), Some(json!("1")));
        for i in 0..5 {
            put(&store, "a", &format!("x{i}"));
        }
        let err = store
            .read(Kind::ConfigMap, ReadAt::Exact(a1.rv))
            .expect_err("compacted");
        assert_eq!(err.status_code(), 410);
        assert_eq!(err.reason.as_str(), "Expired");
        let err = store
            .read(Kind::ConfigMap, ReadAt::Exact(10_000))
            .expect_err("future");
        assert_eq!(err.status_code(), 504);
    }

    #[test]
    fn watches_resume_exactly_after_their_revision_or_expire() {
        let store = Store::new(2);
        let a = put(&store, "a", "1");
        let b = put(&store, "b", "1");
        let (_, start, _rx) = store
            .watch(Kind::ConfigMap, Some(a.rv))
            .unwrap_or_else(|e| panic!("{e}"));
        match start {
            WatchStart::Resume(events) => {
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].obj.rv, b.rv);
            }
            WatchStart::Now(_) => panic!("expected a resume"),
        }
        put(&store, "c", "1");
        put(&store, "d", "1");
        let err = store
            .watch(Kind::ConfigMap, Some(a.rv))
            .err()
            .map(|e| e.status_code());
        assert_eq!(err, Some(410));
    }

    #[test]
    fn deletes_are_stamped_with_the_delete_revision() {
        let store = Store::new(10);
        let a = put(&store, "a", "1");
        let key = ObjKey::new("default", "a");
        let (_, _, mut rx) = store
            .watch(Kind::ConfigMap, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let out = store.mutate(Kind::ConfigMap, &key, |_| Ok(Change::Delete));
        let Ok(Outcome::Deleted(obj)) = out else {
            panic!("expected delete")
        };
        assert_eq!(obj.rv, a.rv + 1);
        let ev = rx.try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev.etype, EventType::Deleted);
        assert_eq!(ev.old.as_ref().map(|o| o.rv), Some(a.rv));
        assert!(store.get(Kind::ConfigMap, &key).is_none());
    }
}
