//! Warm pools: a template with `nogoo9/warm-pool-size: N` keeps N pods from it created
//! and Ready in the workspace namespace — unowned (`nogoo9/type=pool`, so never routed,
//! listed or culled) — and a spawn from it claims one instead of starting a pod.
//!
//! Claiming is one update of the pool pod carrying the resourceVersion it was read at
//! (and its UID): the API server lets one of any number of racing claims through (409 for
//! the rest, who try the next pod, or start cold when none is left). The claim sets the id,
//! the owner and the context; the context reaches the running pod through a
//! `downwardAPI` volume (`/var/run/nogoo9/context.json`, from the pod annotation
//! `nogoo9/context`), which the kubelet rewrites on the pod's next sync — so a pooled
//! template must take its context from that file (`nogoo9/context-delivery: file`), and
//! one whose `required-context` must be in the environment at start cannot be pooled.
//! Pods made from an older version of the template are replaced, never handed out.
//!
//! Refilling runs on the replica holding the culler's Lease, at most
//! [`REFILL_PER_ROUND`] creations per template per round.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, DownwardAPIVolumeSource, ObjectFieldSelector, Pod, Volume,
    VolumeMount,
};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use shared::ids::WorkspaceId;
use shared::names;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::outcome::ToolError;
use crate::spawner::{self, OWNER_ENV, RESERVED_ENV_PREFIX, SpawnInput, WORKSPACE_ID_ENV};
use crate::templates::{Template, required_context};

/// The most pods one template may keep warm.
pub const MAX_POOL_SIZE: u32 = 50;
/// The most pool pods one round creates per template (the refill rate's bound).
pub const REFILL_PER_ROUND: usize = 5;
/// Where file delivery mounts the workspace's identity and context.
pub const CONTEXT_DIR: &str = "/var/run/nogoo9";
const CONTEXT_VOLUME: &str = "nogoo9-context";
/// Pool pods carry the hash of the template version they were made from.
const TEMPLATE_HASH_ANNOTATION: &str = "nogoo9/pool-template-hash";

/// How context reaches a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Environment variables of the first container, set at creation (the original's way).
    Env,
    /// Files under [`CONTEXT_DIR`]: `context.json`, `workspace-id`, `owner`.
    File,
}

/// A template's (or a planned pod's) `nogoo9/context-delivery`.
pub fn delivery(annotations: &BTreeMap<String, String>) -> Result<Delivery, String> {
    match annotations
        .get(names::CONTEXT_DELIVERY_ANNOTATION)
        .map(String::as_str)
    {
        None | Some("env") => Ok(Delivery::Env),
        Some("file") => Ok(Delivery::File),
        Some(other) => Err(format!(
            "annotation {} must be \"env\" or \"file\", got {other:?}",
            names::CONTEXT_DELIVERY_ANNOTATION
        )),
    }
}

/// A template's pool size (0: no pool), refused when the template cannot be pooled.
pub fn size(annotations: &BTreeMap<String, String>) -> Result<u32, String> {
    let name = names::WARM_POOL_SIZE_ANNOTATION;
    let Some(v) = annotations.get(name) else {
        return Ok(0);
    };
    let n: u32 = v
        .trim()
        .parse()
        .ok()
        .filter(|n| *n <= MAX_POOL_SIZE)
        .ok_or_else(|| {
            format!("annotation {name} must be a whole number from 0 to {MAX_POOL_SIZE}, got {v:?}")
        })?;
    if n == 0 {
        return Ok(0);
    }
    let required = required_context(annotations);
    if !required.is_empty() && delivery(annotations)? == Delivery::Env {
        return Err(format!(
            "annotation {name}: this template's required context ({}) must be in the environment at start, which a pod made before the spawn cannot have; set {}: file (the context then arrives in {CONTEXT_DIR}/context.json) or remove {name}",
            required.join(", "),
            names::CONTEXT_DELIVERY_ANNOTATION
        ));
    }
    for (other, why) in [
        (
            names::IAM_ROLE_ARN_ANNOTATION,
            "its IAM ServiceAccount is made per workspace id",
        ),
        (
            names::VOLUME_SIZE_ANNOTATION,
            "its volume is made per workspace id",
        ),
    ] {
        if annotations.contains_key(other) {
            return Err(format!(
                "annotation {name} cannot be combined with {other}: {why}, which a pooled pod does not have yet"
            ));
        }
    }
    Ok(n)
}

/// File delivery: the workspace's id, owner and context come from a `downwardAPI`
/// volume mounted at [`CONTEXT_DIR`] in every container, not from the environment (so a
/// pool pod and a cold one look the same to the app). `context` is `None` for a pool pod
/// (its files stay empty until it is claimed).
pub fn deliver_by_file(pod: &mut Pod, context: Option<&BTreeMap<String, String>>) {
    let keys: BTreeSet<&str> = context
        .into_iter()
        .flat_map(|c| c.keys().map(String::as_str))
        .collect();
    let field = |path: &str, field: &str| DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            field_path: field.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: CONTEXT_VOLUME.into(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![
                    field(
                        "context.json",
                        &format!("metadata.annotations['{}']", names::CONTEXT_ANNOTATION),
                    ),
                    field(
                        "workspace-id",
                        &format!("metadata.labels['{}']", names::WORKSPACE_ID_LABEL),
                    ),
                    field(
                        "owner",
                        &format!("metadata.annotations['{}']", names::USER_SUB_ANNOTATION),
                    ),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for c in containers {
            if let Some(env) = c.env.as_mut() {
                env.retain(|e| {
                    !keys.contains(e.name.as_str())
                        && e.name != OWNER_ENV
                        && e.name != WORKSPACE_ID_ENV
                        && !e.name.starts_with(RESERVED_ENV_PREFIX)
                });
                if env.is_empty() {
                    c.env = None;
                }
            }
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(VolumeMount {
                    name: CONTEXT_VOLUME.into(),
                    mount_path: CONTEXT_DIR.into(),
                    read_only: Some(true),
                    ..Default::default()
                });
        }
    }
    if let Some(context) = context {
        let json = serde_json::to_string(context).unwrap_or_else(|_| "{}".into());
        pod.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(names::CONTEXT_ANNOTATION.into(), json);
    }
}

/// The `nogoo9/pool` label value of a template's pool.
pub fn key(template: &Template) -> String {
    let h = shared::hash::fnv1a(format!("{}/{}", template.namespace, template.name).as_bytes());
    format!("{h:016x}")
}

/// A template version's fingerprint: its spec and the annotations that shape its pods
/// (not the pool's size, description or tag: resizing a pool keeps its warm pods).
fn template_hash(template: &Template) -> String {
    let spec = serde_json::to_string(&template.spec.pod).unwrap_or_default();
    let mut shaping = template.annotations.clone();
    for cosmetic in [
        names::WARM_POOL_SIZE_ANNOTATION,
        names::DESCRIPTION_ANNOTATION,
        names::TAG_ANNOTATION,
    ] {
        shaping.remove(cosmetic);
    }
    let rest =
        serde_json::to_string(&(&shaping, &template.spec.labels, &template.spec.annotations))
            .unwrap_or_default();
    let h = shared::hash::fnv1a(format!("{spec}\n{rest}").as_bytes());
    format!("{h:016x}")
}

/// A pool pod for `template` in `ns`: the spawner's pod without id, owner or context.
pub fn pool_pod(
    level: crate::pod_security::Level,
    template: &Template,
    ns: &str,
) -> Result<Pod, String> {
    let placeholder = WorkspaceId::parse("pool").map_err(|e| e.to_string())?;
    let mut annotations = template.annotations.clone();
    // The context arrives at claim time; nothing is required of the pool pod.
    annotations.remove(names::REQUIRED_CONTEXT_ANNOTATION);
    let plan = spawner::plan(SpawnInput {
        id: &placeholder,
        namespace: ns,
        spec: template.spec.clone(),
        annotations,
        context: BTreeMap::new(),
        owner: None,
        template: Some(&template.name),
    })
    .map_err(|e| e.to_string())?;
    let mut pod = plan.pod;
    deliver_by_file(&mut pod, None);
    let meta = &mut pod.metadata;
    meta.name = None;
    meta.generate_name = Some(format!(
        "pool-{}-",
        spawner::owner_label(&template.name)
            .chars()
            .take(40)
            .collect::<String>()
            .to_ascii_lowercase()
            .replace(['_', '.'], "-")
    ));
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.remove(names::WORKSPACE_ID_LABEL);
    labels.remove(names::USER_SUB_LABEL);
    labels.insert(names::TYPE_LABEL.into(), names::TYPE_POOL.into());
    labels.insert(names::POOL_LABEL.into(), key(template));
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.remove(names::USER_SUB_ANNOTATION);
    if let Some(r) = template.annotations.get(names::REQUIRED_CONTEXT_ANNOTATION) {
        annotations.insert(names::REQUIRED_CONTEXT_ANNOTATION.into(), r.clone());
    }
    annotations.insert(TEMPLATE_HASH_ANNOTATION.into(), template_hash(template));
    if let Some(spec) = &pod.spec {
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let violations = crate::pod_security::check(spec, &annotations, level);
        if !violations.is_empty() {
            return Err(crate::pod_security::describe(level, &violations));
        }
    }
    Ok(pod)
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed" | "Succeeded")
    )
}

/// Not Ready long after its creation (a bad image, say): replaced rather than counted
/// as warm forever.
fn is_stuck(pod: &Pod) -> bool {
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| std::time::SystemTime::from(t.0));
    !is_ready(pod)
        && created.is_some_and(|c| c + crate::standing::START_GRACE < std::time::SystemTime::now())
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Claims a Ready pod of `template`'s pool for workspace `id`: `Ok(None)` when none is
/// left (the caller starts one cold). The returned pod is the workspace's.
pub async fn claim(
    ctx: &Context,
    ns: &str,
    template: &Template,
    id: &WorkspaceId,
    owner: Option<&str>,
    context: &BTreeMap<String, String>,
) -> Result<Option<Pod>, ToolError> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!(
        "{}={},{}={}",
        names::TYPE_LABEL,
        names::TYPE_POOL,
        names::POOL_LABEL,
        key(template)
    );
    let hash = template_hash(template);
    let mut candidates: Vec<Pod> = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|p| is_ready(p) && annotation(p, TEMPLATE_HASH_ANNOTATION) == Some(hash.as_str()))
        .collect();
    // Oldest first: the longest-warm pod goes, the pool refills behind it.
    candidates.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    });
    for mut pod in candidates {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.remove(names::POOL_LABEL);
        labels.insert(names::TYPE_LABEL.into(), names::TYPE_WORKSPACE.into());
        labels.insert(names::WORKSPACE_ID_LABEL.into(), id.to_string());
        labels.insert(
            names::USER_SUB_LABEL.into(),
            spawner::owner_label(owner.unwrap_or("anonymous")),
        );
        let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.remove(TEMPLATE_HASH_ANNOTATION);
        if let Some(sub) = owner {
            annotations.insert(names::USER_SUB_ANNOTATION.into(), sub.into());
        }
        annotations.insert(
            names::CLAIMED_AT_ANNOTATION.into(),
            k8s_openapi::jiff::Timestamp::now().to_string(),
        );
        annotations.insert(
            names::CONTEXT_ANNOTATION.into(),
            serde_json::to_string(context).unwrap_or_else(|_| "{}".into()),
        );
        // The pod as read carries its resourceVersion and UID: of racing claims exactly
        // one is accepted; the others get 409 and try the next pod.
        match api.replace(&name, &PostParams::default(), &pod).await {
            Ok(claimed) => return Ok(Some(claimed)),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Runs until `shutdown`: every `every`, when `leader` says so, refills the pools.
pub async fn run(
    ctx: Context,
    leader: watch::Receiver<bool>,
    every: Duration,
    shutdown: CancellationToken,
) {
    crate::lease::while_leading(leader, every, shutdown, || async {
        if let Err(e) = refill(&ctx).await {
            tracing::warn!(error = %e, "a warm-pool round failed");
        }
    })
    .await;
}

/// One round: pools of templates that want them topped up (bounded), pods of stale
/// template versions, finished pods, pods not Ready 10 minutes after their creation and
/// pools nobody wants any more deleted.
async fn refill(ctx: &Context) -> Result<(), kube::Error> {
    let ns = ctx.workspace_namespace.clone();
    let mut wanted: BTreeMap<String, (Template, u32)> = BTreeMap::new();
    // Pools are kept for the templates in control's namespace (the ones every user sees).
    let templates: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let lp = ListParams::default().labels(&format!("{}=true", names::POD_TEMPLATE_LABEL));
    for cm in templates.list(&lp).await?.items {
        let Ok(t) = crate::templates::from_config_map(&cm) else {
            continue;
        };
        match size(&t.annotations) {
            Ok(0) => {}
            Ok(n) => {
                wanted.insert(key(&t), (t, n));
            }
            Err(why) => {
                tracing::warn!(template = %t.name, %why, "a template's warm pool is misconfigured; it gets none");
            }
        }
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{}={}", names::TYPE_LABEL, names::TYPE_POOL);
    let pods = api.list(&ListParams::default().labels(&selector)).await?;
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &pods.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let pool = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(names::POOL_LABEL))
            .cloned()
            .unwrap_or_default();
        let current = wanted.get(&pool).is_some_and(|(t, n)| {
            annotation(pod, TEMPLATE_HASH_ANNOTATION) == Some(template_hash(t).as_str())
                && live.get(&pool).copied().unwrap_or(0) < *n as usize
        });
        if current && !is_finished(pod) && !is_stuck(pod) {
            *live.entry(pool).or_default() += 1;
            continue;
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
            }),
            ..Default::default()
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        // A 409 here is a pod claimed meanwhile: it is a workspace now, left alone.
        if let Err(e) = api.delete(&name, &dp).await {
            tracing::debug!(pod = %name, error = %e, "a stale pool pod was not deleted");
        }
    }
    for (pool, (template, n)) in &wanted {
        let have = live.get(pool).copied().unwrap_or(0);
        let missing = (*n as usize).saturating_sub(have).min(REFILL_PER_ROUND);
        if missing == 0 {
            continue;
        }
        let pod = match pool_pod(ctx.pod_security, template, &ns) {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!(template = %template.name, %why, "a template's pool pod cannot be made");
                continue;
            }
        };
        for _ in 0..missing {
            if let Err(e) = api.create(&PostParams::default(), &pod).await {
                tracing::warn!(template = %template.name, error = %e, "creating a pool pod failed");
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
