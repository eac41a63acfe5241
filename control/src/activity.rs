//! Workspace activity from the gateways, made visible: `list_workspaces` reads it from
//! the publisher, and this task writes it to each pod as `nogoo9/last-activity` at a
//! bounded rate (a few pods per round, each at most once per round), so operators and
//! idle-reapers can see it with kubectl.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use shared::names;
use tokio_util::sync::CancellationToken;

use crate::publish::Publisher;

/// Pods patched per round at most (the rest wait for the next).
const PATCHES_PER_ROUND: usize = 50;
/// Activity older than this is no longer tracked.
const FORGET_MS: u64 = 24 * 3_600_000;

pub fn rfc3339(unix_ms: u64) -> String {
    k8s_openapi::jiff::Timestamp::from_millisecond(unix_ms as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Patches `nogoo9/last-activity` on pods whose activity changed, every `every`.
pub async fn annotate(
    client: kube::Client,
    publisher: Publisher,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let changed = publisher
            .activity()
            .drain(now_ms(), FORGET_MS, PATCHES_PER_ROUND);
        let table = publisher.table();
        for a in changed {
            // Only the pod the route points at (a replaced pod's activity is moot).
            let Some(route) = table
                .get(&a.workspace_id)
                .filter(|r| r.pod_uid == a.pod_uid)
            else {
                continue;
            };
            let pods: Api<Pod> = Api::namespaced(client.clone(), &route.namespace);
            let selector = format!("{}={}", names::WORKSPACE_ID_LABEL, a.workspace_id);
            let found = match pods.list(&ListParams::default().labels(&selector)).await {
                Ok(l) => l
                    .items
                    .into_iter()
                    .find(|p| p.metadata.uid.as_deref() == Some(&a.pod_uid)),
                Err(e) => {
                    tracing::debug!(error = %e, "listing a workspace pod for its activity failed");
                    continue;
                }
            };
            let Some(name) = found.and_then(|p| p.metadata.name) else {
                continue;
            };
            // The UID in the patch is a precondition: a different pod with this name is not touched.
            let patch = json!({"metadata": {"uid": a.pod_uid, "annotations": {names::LAST_ACTIVITY_ANNOTATION: rfc3339(a.last_active_unix_ms)}}});
            if let Err(e) = pods
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(error = %e, pod = %name, "recording activity on the pod failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }
}
