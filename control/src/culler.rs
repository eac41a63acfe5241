//! Stops workspaces that are idle past their timeout or older than their maximum
//! lifetime (`lifecycle.rs` decides). Only the replica holding the culler's Lease
//! (`lease.rs`) acts, so two replicas never cull the same workspace twice.
//!
//! Activity comes from two places: this replica's gateways (the publisher's activity log,
//! fresh) and the `nogoo9/last-activity` annotation every replica writes for its own
//! gateways' traffic (`activity.rs`). The annotation lags by up to the annotate interval
//! plus a gateway's report interval, so a workspace counts as idle only past its timeout
//! plus that slack: traffic through any gateway never gets it culled.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use shared::names;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::caller::Caller;
use crate::config::Mode;
use crate::context::Context;
use crate::lifecycle::Verdict;
use crate::standing::standing;
use shared::ids::WorkspaceId;

/// Runs until `shutdown`: every `every`, when `leader` says so, stops what is due.
pub async fn run(
    ctx: Context,
    leader: watch::Receiver<bool>,
    every: Duration,
    shutdown: CancellationToken,
) {
    crate::lease::while_leading(leader, every, shutdown, || async {
        if let Err(e) = round(&ctx).await {
            tracing::warn!(error = %e, "a culling round failed");
        }
    })
    .await;
}

/// One pass over the workspace pods.
async fn round(ctx: &Context) -> Result<(), kube::Error> {
    let api: Api<Pod> = match ctx.mode {
        Mode::Namespaced => Api::namespaced(ctx.client.clone(), &ctx.namespace),
        Mode::Cluster => Api::all(ctx.client.clone()),
    };
    let selector = format!("{}={}", names::TYPE_LABEL, names::TYPE_WORKSPACE);
    let pods = api.list(&ListParams::default().labels(&selector)).await?;
    let now = SystemTime::now();
    let mut due: BTreeMap<(String, String), (Pod, crate::lifecycle::Reason)> = BTreeMap::new();
    for pod in pods.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(id) = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(names::WORKSPACE_ID_LABEL))
            .cloned()
        else {
            continue;
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let s = match standing(ctx, &pod) {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!(workspace = %id, %why, "a workspace's lifecycle annotations are invalid; it is left alone");
                continue;
            }
        };
        if let Verdict::Stop(reason) =
            s.policy
                .decide(s.started, s.last_active, now, ctx.activity_slack)
        {
            due.insert((ns, id), (pod, reason));
        }
    }
    for ((ns, id), (pod, reason)) in due {
        tracing::info!(workspace = %id, namespace = %ns, why = %reason.describe(), "stopping a workspace");
        crate::events::record(
            &ctx.client,
            &pod,
            crate::events::Type::Normal,
            reason.event_reason(),
            &format!("workspace {id} {}", reason.describe()),
        )
        .await;
        // (A suspension says "Suspended" too, from `suspend.rs`.)
        ctx.metrics.record_culled();
        let suspend = matches!(reason, crate::lifecycle::Reason::Idle(_))
            && standing(ctx, &pod)
                .is_ok_and(|s| s.policy.action == crate::lifecycle::IdleAction::Suspend);
        let claim = match WorkspaceId::parse(&id) {
            Ok(wid) if suspend => crate::claims::get(&ctx.client, &ctx.namespace, &wid)
                .await
                .ok()
                .flatten()
                .filter(|c| c.names_pod(&pod)),
            _ => None,
        };
        let done = match claim {
            Some(claim) => crate::suspend::suspend(ctx, &pod, &claim).await,
            None => crate::workspaces::stop(ctx, &id, Some(&ns), &Caller::Operator)
                .await
                .map(|_| ()),
        };
        if let Err(e) = done {
            tracing::warn!(workspace = %id, error = %e.message, "stopping a workspace that is due failed");
        }
    }
    Ok(())
}
