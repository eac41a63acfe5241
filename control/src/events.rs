//! Kubernetes Events on workspace pods, so `kubectl get events` (and `describe pod`) tell
//! a workspace's story: spawned, ready, failed (with the reason), culled, expired.
//! Best effort: an event that cannot be written is logged, never fails the operation.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

/// The component events are reported by.
pub const COMPONENT: &str = "nocrd9";

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Normal,
    Warning,
}

/// Records `reason: message` about `pod`.
pub async fn record(client: &kube::Client, pod: &Pod, kind: Type, reason: &str, message: &str) {
    let (Some(name), Some(ns)) = (
        pod.metadata.name.as_deref(),
        pod.metadata.namespace.as_deref(),
    ) else {
        return;
    };
    let now = Time(Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            // Unique per event, like the real event recorder's `<object>.<suffix>`.
            name: Some(format!("{name}.{}", uuid::Uuid::new_v4().simple())),
            namespace: Some(ns.to_string()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(
            match kind {
                Type::Normal => "Normal",
                Type::Warning => "Warning",
            }
            .into(),
        ),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, pod = name, reason, "recording an event failed");
    }
}
