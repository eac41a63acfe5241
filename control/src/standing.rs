//! Where a workspace pod stands in its lifecycle: when it started, when it was last
//! active (this replica's gateways, or the `nogoo9/last-activity` annotation every
//! replica writes) and its policy. Read by the culler and by `list_workspaces`.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use shared::ids::WorkspaceId;
use shared::names;

use crate::context::Context;
use crate::lifecycle::Policy;

/// How a workspace pod stands, as the culler and `list_workspaces` see it.
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    pub started: SystemTime,
    /// The latest activity any gateway (or `keepalive_workspace`) reported, if any.
    pub activity: Option<SystemTime>,
    /// What idleness counts from: that activity, or the start.
    pub last_active: SystemTime,
    pub policy: Policy,
}

/// A pod's start (its status, else its creation), last activity and policy.
pub fn standing(ctx: &Context, pod: &Pod) -> Result<Standing, String> {
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| SystemTime::from(t.0));
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    // A warm-pool pod's life as a workspace starts when a spawn claimed it.
    let claimed = annotations
        .get(names::CLAIMED_AT_ANNOTATION)
        .and_then(|v| v.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(SystemTime::from);
    let started = claimed
        .or_else(|| {
            pod.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| SystemTime::from(t.0))
        })
        .or(created)
        .unwrap_or_else(SystemTime::now);
    let annotated = annotations
        .get(names::LAST_ACTIVITY_ANNOTATION)
        .and_then(|v| v.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(SystemTime::from);
    let activity = annotated.max(local_activity(ctx, pod));
    let last_active = activity.map_or(started, |a| a.max(started));
    let policy = Policy::of(&annotations, ctx.lifecycle)?;
    Ok(Standing {
        started,
        activity,
        last_active,
        policy,
    })
}

/// What this replica's gateways reported for the pod.
fn local_activity(ctx: &Context, pod: &Pod) -> Option<SystemTime> {
    let id = pod
        .metadata
        .labels
        .as_ref()?
        .get(names::WORKSPACE_ID_LABEL)
        .and_then(|i| WorkspaceId::parse(i).ok())?;
    let ms = ctx
        .publisher
        .as_ref()?
        .activity()
        .last_active(&id, pod.metadata.uid.as_deref()?)?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}
