//! Suspend and resume: a workspace whose template says `nogoo9/idle-action: suspend`
//! loses its pod when idle but keeps what it needs to come back — its id (the claim, now
//! marked `suspended`), its files (the PersistentVolumeClaim `ws-<id>-data`, when the
//! template has `nogoo9/volume-size`) and its spawn record: the pod manifest, context
//! values included, in a Secret `nogoo9-rec-<id>` in control's namespace (never a
//! ConfigMap, never a log). Resuming creates the pod again from that record.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use shared::ids::WorkspaceId;
use shared::names;

use crate::claims::{self, Claim};
use crate::context::Context;
use crate::outcome::ToolError;

/// The Secret holding a suspended workspace's pod manifest.
pub fn record_name(id: &WorkspaceId) -> String {
    format!("nogoo9-rec-{id}")
}

/// The PersistentVolumeClaim of a workspace with `nogoo9/volume-size`.
pub fn volume_name(id: &WorkspaceId) -> String {
    format!("ws-{id}-data")
}

/// How long a resume waits for the previous pod (still stopping) to go.
const PREVIOUS_POD_WAIT: Duration = Duration::from_secs(60);

/// `1Gi`, `500Mi`, `10G`: a storage quantity as the API server takes it.
pub fn check_size(v: &str) -> Result<(), String> {
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    let units = ["", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || !units.contains(&unit) {
        return Err(format!(
            "annotation {} must be a size like 1Gi or 500Mi, got {v:?}",
            names::VOLUME_SIZE_ANNOTATION
        ));
    }
    Ok(())
}

/// With `nogoo9/volume-size`, the pod's first `emptyDir` becomes the workspace's claim.
/// A pod with none is refused: the claim would be made and never mounted.
pub fn use_volume(pod: &mut Pod, id: &WorkspaceId) -> Result<(), String> {
    let found = pod
        .spec
        .as_mut()
        .and_then(|spec| spec.volumes.as_mut())
        .and_then(|volumes| volumes.iter_mut().find(|v| v.empty_dir.is_some()));
    let Some(v) = found else {
        return Err(format!(
            "annotation {} needs an emptyDir volume in the pod spec to hold the workspace's files",
            names::VOLUME_SIZE_ANNOTATION
        ));
    };
    *v = Volume {
        name: v.name.clone(),
        persistent_volume_claim: Some(
            k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                claim_name: volume_name(id),
                read_only: None,
            },
        ),
        ..Default::default()
    };
    Ok(())
}

/// The workspace's claim of `size` (kept when it exists and is this workspace's).
pub async fn ensure_volume(
    ctx: &Context,
    ns: &str,
    id: &WorkspaceId,
    owner: Option<&str>,
    size: &str,
) -> Result<(), ToolError> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let mut annotations = std::collections::BTreeMap::new();
    if let Some(o) = owner {
        annotations.insert(names::USER_SUB_ANNOTATION.to_string(), o.to_string());
    }
    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": volume_name(id), "labels": {
            names::WORKSPACE_ID_LABEL: id.to_string(),
            names::MANAGED_BY_LABEL: names::MANAGED_BY_SPAWNER}, "annotations": annotations},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    }))
    .map_err(|e| ToolError::internal(e.to_string()))?;
    match api.create(&PostParams::default(), &pvc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&volume_name(id)).await?;
            let labels = existing.metadata.labels.unwrap_or_default();
            if labels.get(names::WORKSPACE_ID_LABEL) == Some(&id.to_string())
                && labels.get(names::MANAGED_BY_LABEL).map(String::as_str)
                    == Some(names::MANAGED_BY_SPAWNER)
            {
                Ok(())
            } else {
                Err(ToolError::conflict(format!(
                    "PersistentVolumeClaim {} exists and does not belong to workspace {id}",
                    volume_name(id)
                )))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The pod as it can be created again: what it was asked to be, no server state.
fn manifest(pod: &Pod) -> Pod {
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(names::LAST_ACTIVITY_ANNOTATION);
    let mut spec = pod.spec.clone().unwrap_or_default();
    spec.node_name = None;
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            labels: pod.metadata.labels.clone(),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Suspends the workspace of `pod`: its record saved, its claim marked, its pod stopped
/// gracefully (the pre-stop hook runs); its id, files and service account stay.
pub async fn suspend(ctx: &Context, pod: &Pod, claim: &Claim) -> Result<(), ToolError> {
    let id = &claim.id;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let body =
        serde_json::to_vec(&manifest(pod)).map_err(|e| ToolError::internal(e.to_string()))?;
    let record = Secret {
        metadata: ObjectMeta {
            name: Some(record_name(id)),
            labels: Some(
                [
                    (names::WORKSPACE_ID_LABEL.to_string(), id.to_string()),
                    (
                        names::MANAGED_BY_LABEL.to_string(),
                        names::MANAGED_BY_SPAWNER.to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        data: Some([("pod.json".to_string(), ByteString(body))].into()),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &record).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut current = secrets.get(&record_name(id)).await?;
            current.data = record.data.clone();
            secrets
                .replace(&record_name(id), &PostParams::default(), &current)
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    mark(ctx, claim, true).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &claim.namespace);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match pods
        .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    crate::events::record(
        &ctx.client,
        pod,
        crate::events::Type::Normal,
        "Suspended",
        &format!("workspace {id} suspended; its id, files and record are kept"),
    )
    .await;
    Ok(())
}

/// Marks the claim suspended (or active again); the claim's resourceVersion is the
/// precondition, so a concurrent change wins and this one is retried by its caller.
async fn mark(ctx: &Context, claim: &Claim, suspended: bool) -> Result<(), ToolError> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let mut cm = api.get(&claims::claim_name(&claim.id)).await?;
    if cm.metadata.uid.as_deref() != Some(claim.uid.as_str()) {
        return Err(ToolError::conflict(format!(
            "workspace {}'s claim changed; retry",
            claim.id
        )));
    }
    let data = cm.data.get_or_insert_with(Default::default);
    // Already so (another replica got there first): nothing to write.
    if (data.get("state").map(String::as_str) == Some("suspended")) == suspended {
        return Ok(());
    }
    if suspended {
        data.insert("state".into(), "suspended".into());
    } else {
        data.remove("state");
    }
    api.replace(&claims::claim_name(&claim.id), &PostParams::default(), &cm)
        .await?;
    Ok(())
}

/// Why a suspended workspace comes back (its event's reason).
#[derive(Debug, Clone, Copy)]
pub enum Why {
    /// `resume_workspace`, or a spawn of its id by its owner.
    Resumed,
    /// Its owner's request through a gateway (`nogoo9/wake-on-request`).
    Woken,
}

/// Creates the suspended workspace's pod again from its record and marks it active.
pub async fn resume(ctx: &Context, claim: &Claim, why: Why) -> Result<Pod, ToolError> {
    let id = &claim.id;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let record = secrets.get_opt(&record_name(id)).await?.ok_or_else(|| {
        ToolError::conflict(format!(
            "workspace {id} is suspended but its record is missing"
        ))
    })?;
    let pod: Pod = record
        .data
        .as_ref()
        .and_then(|d| d.get("pod.json"))
        .and_then(|b| serde_json::from_slice(&b.0).ok())
        .ok_or_else(|| ToolError::internal(format!("workspace {id}'s record cannot be read")))?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &claim.namespace);
    let deadline = tokio::time::Instant::now() + PREVIOUS_POD_WAIT;
    let created = loop {
        match pods.create(&PostParams::default(), &pod).await {
            Ok(p) => break p,
            // The suspended pod is still running its pre-stop hook.
            Err(kube::Error::Api(s)) if s.code == 409 && tokio::time::Instant::now() < deadline => {
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                match pods.get_opt(name).await? {
                    // Its suspension never stopped it (the delete failed): it is resumed.
                    Some(p) if p.metadata.deletion_timestamp.is_none() && claim.names_pod(&p) => {
                        break p;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    mark(ctx, claim, false).await?;
    crate::events::record(
        &ctx.client,
        &created,
        crate::events::Type::Normal,
        match why {
            Why::Resumed => "Resumed",
            Why::Woken => "Woken",
        },
        &match why {
            Why::Resumed => format!("workspace {id} resumed from its record"),
            Why::Woken => format!("workspace {id} woken by its owner's request"),
        },
    )
    .await;
    Ok(created)
}

/// Acts on gateways' wake requests until `shutdown`: a suspended workspace whose
/// template allows it (`nogoo9/wake-on-request`) is resumed. The gateway asked only for
/// the workspace's owner (it checked the token); repeated asks while one is in progress
/// wait on the id's spawn lock and then find it running.
pub async fn serve_wakes(
    ctx: Context,
    mut wakes: tokio::sync::mpsc::UnboundedReceiver<WorkspaceId>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let in_flight: Arc<Mutex<HashSet<WorkspaceId>>> = Arc::default();
    loop {
        let id = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = wakes.recv() => match next {
                Some(id) => id,
                None => return,
            },
        };
        // The socket is trusted (0600, the gateway checked the owner), but what it asks
        // costs API calls: ask only for ids the watch knows as suspended and wakeable, and
        // handle each id once at a time (the gateway repeats its asks every 2 s).
        let wakeable = ctx.workspaces.as_ref().is_none_or(|index| {
            index
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .claim(&id)
                .is_some_and(|c| c.suspended && c.wake)
        });
        if !wakeable
            || !in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone())
        {
            continue;
        }
        let ctx = ctx.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let _done = InFlight(in_flight, id.clone());
            let _guard = ctx.spawn_lock(&id).await;
            let claim = match claims::get(&ctx.client, &ctx.namespace, &id).await {
                Ok(Some(c)) if c.suspended && c.wake => c,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(workspace = %id, error = %e, "reading a claim to wake failed");
                    return;
                }
            };
            match resume(&ctx, &claim, Why::Woken).await {
                Ok(_) => tracing::info!(workspace = %id, "woken on its owner's request"),
                Err(e) => tracing::warn!(workspace = %id, error = %e.message, "waking failed"),
            }
        });
    }
}

/// Takes an id off the in-flight set when its wake ends, however it ends.
struct InFlight(Arc<Mutex<HashSet<WorkspaceId>>>, WorkspaceId);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

/// Removes what a stopped workspace kept while suspended: its record and its files.
pub async fn forget(ctx: &Context, ns: &str, id: &WorkspaceId) -> Result<(), ToolError> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    match secrets
        .delete(&record_name(id), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(pvc) = pvcs.get_opt(&volume_name(id)).await? {
        let ours = pvc.metadata.labels.as_ref().is_some_and(|l| {
            l.get(names::WORKSPACE_ID_LABEL) == Some(&id.to_string())
                && l.get(names::MANAGED_BY_LABEL).map(String::as_str)
                    == Some(names::MANAGED_BY_SPAWNER)
        });
        if ours {
            match pvcs
                .delete(&volume_name(id), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_the_volume_swap() {
        for ok in ["1Gi", "500Mi", "10G", "1024"] {
            assert!(check_size(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Gi", "1 Gi", "1GB", "-1Gi", "big"] {
            assert!(check_size(bad).is_err(), "{bad}");
        }
        let id = WorkspaceId::parse("w").unwrap_or_else(|e| panic!("{e}"));
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "c", "image": "x"}],
                     "volumes": [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "work", "emptyDir": {}}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut bare: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "c", "image": "x"}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let e = use_volume(&mut bare, &id).expect_err("no emptyDir to hold the files");
        assert!(e.contains("needs an emptyDir volume"), "{e}");
        assert_eq!(use_volume(&mut pod, &id), Ok(()));
        let vols = pod.spec.and_then(|s| s.volumes).unwrap_or_default();
        assert!(vols[0].config_map.is_some(), "other volumes untouched");
        assert_eq!(vols[1].name, "work");
        assert_eq!(
            vols[1]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("ws-w-data")
        );
        assert!(vols[1].empty_dir.is_none());
    }

    #[test]
    fn a_record_is_the_pod_without_server_state() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ws-a-w", "namespace": "ws", "uid": "u", "resourceVersion": "9",
                         "labels": {"nogoo9/workspace-id": "w"},
                         "annotations": {"nogoo9/last-activity": "2026-01-01T00:00:00Z", "nogoo9/user-sub": "a"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x", "env": [{"name": "K", "value": "v"}]}]},
            "status": {"phase": "Running"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let m = manifest(&pod);
        assert_eq!(m.metadata.name.as_deref(), Some("ws-a-w"));
        assert!(m.metadata.uid.is_none() && m.metadata.resource_version.is_none());
        assert!(m.status.is_none());
        let spec = m.spec.unwrap_or_default();
        assert!(spec.node_name.is_none());
        assert_eq!(
            spec.containers[0].env.as_ref().map(|e| e.len()),
            Some(1),
            "context kept"
        );
        let ann = m.metadata.annotations.unwrap_or_default();
        assert!(!ann.contains_key("nogoo9/last-activity"));
        assert_eq!(ann.get("nogoo9/user-sub").map(String::as_str), Some("a"));
    }
}
