//! Waiting for a spawned workspace to be reachable: its route Ready in the published
//! table and applied by every connected gateway (so the first request to the URL
//! works), with progress notifications on the way and, on a timeout, why — as far as
//! the pod tells (an image pull that failed, no free address…).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use shared::ids::WorkspaceId;
use shared::route::RouteState;

use crate::context::Context;
use crate::outcome::ToolError;
use crate::progress::Progress;

/// Progress steps of a spawn: created, pod running, route applied everywhere.
pub const SPAWN_STEPS: u32 = 4;

/// Waits until the pod's route is Ready in the published table and every connected
/// gateway has applied it, so the first request to the URL succeeds.
pub async fn wait_routable(
    ctx: &Context,
    id: &WorkspaceId,
    pod: &Pod,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), ToolError> {
    match wait_routable_for(ctx, id, pod, timeout, progress).await {
        Err(mut e) if e.code == 504 => {
            // Say why, as far as the pod tells: the agent can act on "image pull failed"
            // or "no free address", not on "not ready".
            if let Some(why) = why_not_ready(ctx, pod).await {
                e.message.push_str(&format!("; {why}"));
            }
            Err(e)
        }
        other => other,
    }
}

/// The pod's phase and its containers' waiting or terminated reasons, in a line.
async fn why_not_ready(ctx: &Context, pod: &Pod) -> Option<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or(&ctx.namespace);
    let name = pod.metadata.name.as_deref()?;
    let now = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let status = now.status?;
    let mut parts = vec![format!(
        "pod {name} is {}",
        status.phase.as_deref().unwrap_or("Unknown")
    )];
    for c in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        let state = c.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            parts.push(format!(
                "{}: {} {}",
                c.name,
                w.reason.as_deref().unwrap_or("waiting"),
                w.message
                    .as_deref()
                    .map(|m| format!("({m})"))
                    .unwrap_or_default()
            ));
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            parts.push(format!(
                "{}: exited {} {}",
                c.name,
                t.exit_code,
                t.reason.as_deref().unwrap_or_default()
            ));
        }
    }
    Some(parts.join("; ").trim().to_string())
}

async fn wait_routable_for(
    ctx: &Context,
    id: &WorkspaceId,
    pod: &Pod,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), ToolError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || ToolError {
        code: 504,
        message: format!(
            "workspace {id} was not ready within {}s (it keeps starting; call spawn_workspace again to wait more)",
            timeout.as_secs()
        ),
    };
    let Some(publisher) = &ctx.publisher else {
        // No route publisher (a library user): wait for the pod itself to be Ready.
        let pods: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or(&ctx.namespace),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        loop {
            let ready = pods.get_opt(&name).await?.is_some_and(|p| {
                crate::routes::route_for_pod(&p, shared::names::DEFAULT_WORKSPACE_PORT)
                    .is_some_and(|r| r.state == RouteState::Ready)
            });
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(timed_out());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut versions = publisher.subscribe_versions();
    let version = loop {
        let table = publisher.table();
        if table
            .get(id)
            .is_some_and(|r| r.pod_uid == uid && r.state == RouteState::Ready)
        {
            break table.version();
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Err(timed_out()),
            changed = versions.changed() => if changed.is_err() { return Err(timed_out()) },
        }
    };
    let gateways = publisher.gateways().len();
    progress
        .report(
            3,
            SPAWN_STEPS,
            format!("pod ready; waiting for {gateways} gateway(s) to apply its route"),
        )
        .await;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    publisher
        .wait_applied(version, left)
        .await
        .map_err(|_| timed_out())?;
    progress
        .report(4, SPAWN_STEPS, format!("workspace {id} is routable"))
        .await;
    Ok(())
}
