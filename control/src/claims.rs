//! Workspace ids are global: one id, one live workspace, across every namespace and
//! every control replica.
//!
//! **The claim.** A spawn first creates a ConfigMap named after the id
//! (`nogoo9-ws-<id>`, label `nogoo9/claim=workspace`) in the claim namespace (control's
//! `--namespace`). The API server lets exactly one creation of a name succeed, whichever
//! replica asks; the second claimant gets 409 AlreadyExists and is told the id is taken
//! (or, if it is the same owner, gets the existing workspace). The claim names the pod
//! (namespace and name, chosen before it exists) and its owner. Users cannot write
//! ConfigMaps through any tool (template writes are for administrators and touch only
//! labelled templates), so only the spawner makes claims.
//!
//! **The route.** Every replica watches pods and claims into an [`Index`] and decides
//! each id's route from it (pure, below): the claimed pod if it is there, else the
//! oldest live pod with that id (pods made outside the tools, say with kubectl). When a
//! pod or a claim comes or goes, that id is decided again at once, so stopping a
//! workspace never leaves another live pod of the id unrouted, and no second pod takes
//! a claimed id's route.
//!
//! **Release.** A claim goes when its pod terminates or disappears: `stop_workspace`
//! deletes it, and every replica's watch deletes a claim whose pod is terminating or
//! gone (after [`CLAIM_GRACE`] for a claim whose pod never appeared, e.g. a control that
//! crashed mid-spawn). Deletes carry the claim's UID as a precondition, so replicas can
//! race them harmlessly and a newer claim of the same id is never touched.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use shared::ids::WorkspaceId;
use shared::names;
use shared::route::Route;
use shared::table::Change;

use crate::routes::route_for_pod;

/// The label marking claim ConfigMaps.
pub const CLAIM_LABEL: &str = names::CLAIM_LABEL;
pub const CLAIM_WORKSPACE: &str = "workspace";
/// The index as the watch keeps it and spawns consult it.
pub type Workspaces = std::sync::Arc<std::sync::Mutex<Index>>;

/// How long a claim may wait for its pod to appear before it counts as abandoned.
pub const CLAIM_GRACE: Duration = Duration::from_secs(60);

/// The claim ConfigMap's name for an id.
pub fn claim_name(id: &WorkspaceId) -> String {
    format!("{}{id}", names::ID_CLAIM_PREFIX)
}

/// The label selector of claim ConfigMaps.
pub fn claim_selector() -> String {
    format!("{CLAIM_LABEL}={CLAIM_WORKSPACE}")
}

/// One id's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: WorkspaceId,
    /// Where the workspace's pod is (or will be).
    pub namespace: String,
    pub pod: String,
    /// The owner's exact subject (`None`: spawned with auth off by nobody in particular).
    pub owner: Option<String>,
    /// The ConfigMap's UID and creation time (unset before it is stored).
    pub uid: String,
    pub created: Option<String>,
    /// Its resourceVersion: a release carries it, so a claim changed since (suspended,
    /// resumed) is never released on stale information.
    pub rv: String,
    /// Suspended (`suspend.rs`): no pod, the id and the files kept for the owner.
    pub suspended: bool,
    /// The owner's request wakes it when suspended.
    pub wake: bool,
    /// The template it was spawned from (shown for a suspended workspace, which has no pod).
    pub template: Option<String>,
}

impl Claim {
    /// The ConfigMap to create in `claim_namespace`.
    pub fn to_config_map(&self, claim_namespace: &str) -> ConfigMap {
        let mut data = BTreeMap::from([
            ("namespace".to_string(), self.namespace.clone()),
            ("pod".to_string(), self.pod.clone()),
        ]);
        if let Some(owner) = &self.owner {
            data.insert("owner".into(), owner.clone());
        }
        if self.suspended {
            data.insert("state".into(), "suspended".into());
        }
        if self.wake {
            data.insert("wake".into(), "true".into());
        }
        if let Some(t) = &self.template {
            data.insert("template".into(), t.clone());
        }
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(claim_name(&self.id)),
                namespace: Some(claim_namespace.to_string()),
                labels: Some(BTreeMap::from([
                    (CLAIM_LABEL.to_string(), CLAIM_WORKSPACE.to_string()),
                    (names::WORKSPACE_ID_LABEL.to_string(), self.id.to_string()),
                    (
                        names::MANAGED_BY_LABEL.to_string(),
                        names::MANAGED_BY_SPAWNER.to_string(),
                    ),
                ])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }

    /// The claim a ConfigMap stands for (`None`: not a well-formed claim).
    pub fn from_config_map(cm: &ConfigMap) -> Option<Claim> {
        let labels = cm.metadata.labels.as_ref()?;
        if labels.get(CLAIM_LABEL).map(String::as_str) != Some(CLAIM_WORKSPACE) {
            return None;
        }
        let id = WorkspaceId::parse(labels.get(names::WORKSPACE_ID_LABEL)?).ok()?;
        if cm.metadata.name.as_deref() != Some(claim_name(&id).as_str()) {
            return None;
        }
        let data = cm.data.as_ref()?;
        Some(Claim {
            namespace: data.get("namespace")?.clone(),
            pod: data.get("pod")?.clone(),
            owner: data.get("owner").cloned(),
            suspended: data.get("state").map(String::as_str) == Some("suspended"),
            wake: data.get("wake").map(String::as_str) == Some("true"),
            template: data.get("template").cloned(),
            rv: cm.metadata.resource_version.clone().unwrap_or_default(),
            uid: cm.metadata.uid.clone().unwrap_or_default(),
            created: cm
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string()),
            id,
        })
    }

    /// Whether this claim's pod is `pod`.
    fn names(&self, namespace: &str, pod: &str) -> bool {
        self.namespace == namespace && self.pod == pod
    }

    /// Whether this claim holds `pod`.
    pub fn names_pod(&self, pod: &Pod) -> bool {
        self.names(
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

/// A claim to delete: its ConfigMap's name and UID (the delete's precondition).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub name: String,
    pub uid: String,
    /// The resourceVersion seen (empty: any).
    pub rv: String,
}

/// What one watch event asks for: route changes to publish, claims to release.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    pub changes: Vec<Change>,
    pub release: Vec<Release>,
}

/// A workspace pod as the index remembers it.
#[derive(Debug, Clone)]
struct Entry {
    id: WorkspaceId,
    namespace: String,
    name: String,
    created: String,
    /// `None` while terminating: known, but not routable and not holding a claim.
    route: Option<Route>,
    owner: Option<String>,
}

/// A live pod holding (or competing for) an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePod {
    pub namespace: String,
    pub name: String,
    pub owner: Option<String>,
}

/// Workspace pods and claims, and the route each id gets. Pure: the watch feeds it
/// events and publishes the [`Effects`].
#[derive(Debug, Default)]
pub struct Index {
    pods: HashMap<String, Entry>,
    by_id: HashMap<WorkspaceId, Vec<String>>,
    claims: HashMap<WorkspaceId, Claim>,
    chosen: HashMap<WorkspaceId, Route>,
    default_port: u16,
}

impl Index {
    pub fn new(default_port: u16) -> Index {
        Index {
            default_port,
            ..Index::default()
        }
    }

    /// Every route now (after a relist: what the publisher's table must equal).
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.chosen.values()
    }

    /// Replaces every pod (a relist); returns the claims to release.
    pub fn reset_pods<'a>(&mut self, pods: impl IntoIterator<Item = &'a Pod>) -> Effects {
        self.pods.clear();
        self.by_id.clear();
        for pod in pods {
            self.insert_pod(pod);
        }
        self.redecide_all()
    }

    /// Replaces every claim (a relist).
    pub fn reset_claims<'a>(&mut self, claims: impl IntoIterator<Item = &'a ConfigMap>) -> Effects {
        self.claims = claims
            .into_iter()
            .filter_map(Claim::from_config_map)
            .map(|c| (c.id.clone(), c))
            .collect();
        self.redecide_all()
    }

    /// A pod was added or changed.
    pub fn pod_applied(&mut self, pod: &Pod) -> Effects {
        let before = self.forget_pod(pod).into_iter();
        let after = self.insert_pod(pod);
        let ids: Vec<WorkspaceId> = before.chain(after).collect();
        self.redecide(ids)
    }

    /// A pod is gone.
    pub fn pod_deleted(&mut self, pod: &Pod) -> Effects {
        let ids: Vec<WorkspaceId> = self.forget_pod(pod).into_iter().collect();
        self.redecide(ids)
    }

    /// A claim was made or changed.
    pub fn claim_applied(&mut self, cm: &ConfigMap) -> Effects {
        match Claim::from_config_map(cm) {
            Some(claim) => {
                let id = claim.id.clone();
                self.claims.insert(id.clone(), claim);
                self.redecide(vec![id])
            }
            None => Effects::default(),
        }
    }

    /// A claim is gone.
    pub fn claim_deleted(&mut self, cm: &ConfigMap) -> Effects {
        match Claim::from_config_map(cm) {
            Some(claim)
                if self
                    .claims
                    .get(&claim.id)
                    .is_some_and(|c| c.uid == claim.uid) =>
            {
                self.claims.remove(&claim.id);
                self.redecide(vec![claim.id])
            }
            _ => Effects::default(),
        }
    }

    /// The claim on `id`, if any.
    pub fn claim(&self, id: &WorkspaceId) -> Option<&Claim> {
        self.claims.get(id)
    }

    /// Every suspended workspace's claim.
    pub fn suspended(&self) -> Vec<Claim> {
        self.claims
            .values()
            .filter(|c| c.suspended)
            .cloned()
            .collect()
    }

    /// Live (not terminating) pods with this id, oldest first.
    pub fn live_pods(&self, id: &WorkspaceId) -> Vec<LivePod> {
        self.candidates(id)
            .into_iter()
            .map(|e| LivePod {
                namespace: e.namespace.clone(),
                name: e.name.clone(),
                owner: e.owner.clone(),
            })
            .collect()
    }

    /// Claims whose pod never appeared within `grace` of their creation (`now` and the
    /// creation times are RFC 3339, compared as instants).
    pub fn abandoned_claims(&self, now: &str, grace: Duration) -> Vec<Release> {
        let now = parse_time(now);
        let mut out: Vec<Release> = self
            .claims
            .values()
            .filter(|c| !c.suspended && !self.has_pod(c))
            .filter(|c| match (now, c.created.as_deref().and_then(parse_time)) {
                (Some(now), Some(created)) => {
                    now.duration_since(created).is_ok_and(|age| age >= grace)
                }
                _ => false,
            })
            .map(release_of)
            .collect();
        out.sort();
        out
    }

    fn has_pod(&self, claim: &Claim) -> bool {
        self.pods
            .values()
            .any(|e| e.id == claim.id && claim.names(&e.namespace, &e.name))
    }

    fn insert_pod(&mut self, pod: &Pod) -> Option<WorkspaceId> {
        let uid = pod.metadata.uid.clone()?;
        let labels = pod.metadata.labels.as_ref()?;
        if labels.get(names::TYPE_LABEL).map(String::as_str) != Some(names::TYPE_WORKSPACE) {
            return None;
        }
        let id = WorkspaceId::parse(labels.get(names::WORKSPACE_ID_LABEL)?).ok()?;
        let entry = Entry {
            id: id.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            created: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            route: route_for_pod(pod, self.default_port),
            owner: crate::routes::owner_of(pod).map(str::to_string),
        };
        self.by_id.entry(id.clone()).or_default().push(uid.clone());
        self.pods.insert(uid, entry);
        Some(id)
    }

    fn forget_pod(&mut self, pod: &Pod) -> Option<WorkspaceId> {
        let uid = pod.metadata.uid.as_deref()?;
        let entry = self.pods.remove(uid)?;
        if let Some(uids) = self.by_id.get_mut(&entry.id) {
            uids.retain(|u| u != uid);
            if uids.is_empty() {
                self.by_id.remove(&entry.id);
            }
        }
        Some(entry.id)
    }

    /// The live pods of an id, oldest first (then by name, so every replica agrees).
    fn candidates(&self, id: &WorkspaceId) -> Vec<&Entry> {
        let mut live: Vec<&Entry> = self
            .by_id
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.pods.get(uid))
            .filter(|e| e.route.is_some())
            .collect();
        live.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
        live
    }

    /// The route an id gets: the claimed pod if it is live, else the oldest live pod.
    fn decide(&self, id: &WorkspaceId) -> Option<Route> {
        let live = self.candidates(id);
        let claim = self.claims.get(id);
        let claimed = claim.and_then(|c| live.iter().find(|e| c.names(&e.namespace, &e.name)));
        if let Some(route) = claimed.or(live.first()).and_then(|e| e.route.clone()) {
            return Some(route);
        }
        // No pod, but the id is suspended: a route that says so (the gateway wakes it
        // for its owner, or answers that it is suspended).
        claim.filter(|c| c.suspended).map(|c| Route {
            workspace_id: c.id.clone(),
            pod_uid: c.uid.clone(),
            namespace: c.namespace.clone(),
            state: shared::route::RouteState::Pending,
            addr: None,
            owner_sub: c.owner.clone(),
            port_is_default: true,
            web: shared::route::WebOptions {
                suspended: true,
                wake_on_request: c.wake,
                ..Default::default()
            },
        })
    }

    /// Whether `id`'s claim must go: its pod is known and terminating.
    fn claim_to_release(&self, id: &WorkspaceId) -> Option<Release> {
        let claim = self.claims.get(id).filter(|c| !c.suspended)?;
        let terminating = self
            .pods
            .values()
            .any(|e| e.id == *id && claim.names(&e.namespace, &e.name) && e.route.is_none());
        terminating.then(|| release_of(claim))
    }

    fn redecide(&mut self, mut ids: Vec<WorkspaceId>) -> Effects {
        ids.sort();
        ids.dedup();
        let mut effects = Effects::default();
        for id in ids {
            let now = self.decide(&id);
            let before = self.chosen.get(&id);
            if now.as_ref() != before {
                match (&now, before) {
                    (Some(route), _) => effects.changes.push(Change::Upsert {
                        route: route.clone(),
                    }),
                    (None, Some(old)) => effects.changes.push(Change::Remove {
                        workspace_id: id.clone(),
                        pod_uid: old.pod_uid.clone(),
                    }),
                    (None, None) => {}
                }
            }
            match now {
                Some(route) => self.chosen.insert(id.clone(), route),
                None => self.chosen.remove(&id),
            };
            effects.release.extend(self.claim_to_release(&id));
        }
        effects
    }

    fn redecide_all(&mut self) -> Effects {
        let ids: Vec<WorkspaceId> = self
            .by_id
            .keys()
            .chain(self.claims.keys())
            .chain(self.chosen.keys())
            .cloned()
            .collect();
        self.redecide(ids)
    }
}

/// The claim on `id` as the API server has it now.
pub async fn get(
    client: &kube::Client,
    claim_ns: &str,
    id: &WorkspaceId,
) -> Result<Option<Claim>, kube::Error> {
    let cm = kube::Api::<ConfigMap>::namespaced(client.clone(), claim_ns)
        .get_opt(&claim_name(id))
        .await?;
    Ok(cm.as_ref().and_then(Claim::from_config_map))
}

/// Claims an id: `Ok(None)` when someone else claimed it first (409 AlreadyExists).
pub async fn create(
    client: &kube::Client,
    claim_ns: &str,
    claim: &Claim,
) -> Result<Option<Claim>, kube::Error> {
    let api = kube::Api::<ConfigMap>::namespaced(client.clone(), claim_ns);
    match api
        .create(
            &kube::api::PostParams::default(),
            &claim.to_config_map(claim_ns),
        )
        .await
    {
        Ok(cm) => Ok(Claim::from_config_map(&cm)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Points a claim at another pod (a spawn that took a warm-pool pod), only if the claim is
/// unchanged since `claim` was read (its resourceVersion travels with the update).
pub async fn point_at(
    client: &kube::Client,
    claim_ns: &str,
    claim: &Claim,
    pod: &str,
) -> Result<Claim, kube::Error> {
    let mut cm = Claim {
        pod: pod.to_string(),
        ..claim.clone()
    }
    .to_config_map(claim_ns);
    cm.metadata.resource_version = Some(claim.rv.clone());
    cm.metadata.uid = Some(claim.uid.clone());
    let stored = kube::Api::<ConfigMap>::namespaced(client.clone(), claim_ns)
        .replace(
            &claim_name(&claim.id),
            &kube::api::PostParams::default(),
            &cm,
        )
        .await?;
    Ok(Claim::from_config_map(&stored).unwrap_or_else(|| claim.clone()))
}

/// Deletes a claim, only if it is still the one with this UID. A claim already gone (or
/// replaced) is not an error: replicas race these deletes by design.
pub async fn release(
    client: &kube::Client,
    claim_ns: &str,
    release: &Release,
) -> Result<(), kube::Error> {
    let dp = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(release.uid.clone()),
            resource_version: (!release.rv.is_empty()).then(|| release.rv.clone()),
        }),
        ..Default::default()
    };
    match kube::Api::<ConfigMap>::namespaced(client.clone(), claim_ns)
        .delete(&release.name, &dp)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => return Err(e),
    }
    // The owner's limit slot goes with the id (`quota.rs`).
    match release
        .name
        .strip_prefix(names::ID_CLAIM_PREFIX)
        .and_then(|i| WorkspaceId::parse(i).ok())
    {
        Some(id) => crate::quota::release(client, claim_ns, &id).await,
        None => Ok(()),
    }
}

/// This claim's release.
pub fn release_of(claim: &Claim) -> Release {
    Release {
        name: claim_name(&claim.id),
        uid: claim.uid.clone(),
        rv: claim.rv.clone(),
    }
}

fn parse_time(t: &str) -> Option<std::time::SystemTime> {
    let ts: k8s_openapi::jiff::Timestamp = t.parse().ok()?;
    Some(std::time::SystemTime::from(ts))
}

#[cfg(test)]
mod tests;
