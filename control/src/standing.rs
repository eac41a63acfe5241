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
    /// What idleness counts from: that activity, or when the pod became usable.
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
    let usable = claimed.unwrap_or_else(|| usable_from(pod, created.unwrap_or(started)));
    let last_active = activity.map_or(usable, |a| a.max(usable));
    let policy = Policy::of(&annotations, ctx.lifecycle)?;
    Ok(Standing {
        started,
        activity,
        last_active,
        policy,
    })
}

/// How long a workspace that has not become Ready yet (an image pull, a slow start) is
/// spared by its idle timeout, counted from its creation.
pub const START_GRACE: Duration = Duration::from_secs(600);

/// When idleness starts counting for a pod nobody has used yet: when it became Ready
/// (a real kubelet stamps `startTime` before it pulls images, so a long pull would
/// otherwise count as idleness and cull a workspace before it ever answered); until it
/// is Ready, its creation plus [`START_GRACE`].
pub fn usable_from(pod: &Pod, created: SystemTime) -> SystemTime {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| SystemTime::from(t.0))
        .unwrap_or(created + START_GRACE)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idleness_counts_from_ready_not_from_an_image_pull() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let pending: Pod = serde_json::from_value(serde_json::json!({
            "status": {"phase": "Pending", "startTime": "1970-01-12T13:46:41Z",
                       "conditions": [{"type": "Ready", "status": "False"}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(usable_from(&pending, created), created + START_GRACE);
        let ready: Pod = serde_json::from_value(serde_json::json!({
            "status": {"phase": "Running", "startTime": "1970-01-12T13:46:41Z",
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": "1970-01-12T13:47:30Z"}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            usable_from(&ready, created),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_050)
        );
    }
}
