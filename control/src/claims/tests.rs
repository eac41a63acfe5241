//! The route decisions: a claimed id keeps its pod's route whatever else appears, a
//! pod that goes never leaves another live pod of its id unrouted, and claims are
//! released with their pods.

use serde_json::json;

use super::*;

fn pod(name: &str, ns: &str, id: &str, uid: &str, created: &str, owner: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": ns, "uid": uid, "creationTimestamp": created,
            "labels": {"nogoo9/type": "workspace", "nogoo9/workspace-id": id},
            "annotations": {"nogoo9/user-sub": owner}
        },
        "spec": {"containers": [{"name": "w", "image": "x"}]},
        "status": {"podIP": "127.10.0.9", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .expect("a pod")
}

fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = serde_json::from_value(json!("2026-11-29T10:00:00Z")).ok();
    p
}

fn claim(id: &str, ns: &str, pod: &str, owner: &str, uid: &str, created: &str) -> ConfigMap {
    let mut cm = Claim {
        id: WorkspaceId::parse(id).expect("id"),
        namespace: ns.into(),
        pod: pod.into(),
        owner: Some(owner.into()),
        uid: String::new(),
        created: None,
        rv: String::new(),
        suspended: false,
        wake: false,
        template: None,
    }
    .to_config_map("nogoo9");
    cm.metadata.uid = Some(uid.into());
    cm.metadata.resource_version = Some(format!("rv-{uid}"));
    cm.metadata.creation_timestamp = serde_json::from_value(json!(created)).ok();
    cm
}

fn upserted(e: &Effects) -> Vec<(String, String)> {
    e.changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert { route } => {
                Some((route.workspace_id.to_string(), route.pod_uid.clone()))
            }
            _ => None,
        })
        .collect()
}

fn routed(index: &Index, id: &str) -> Option<String> {
    index
        .routes()
        .find(|r| r.workspace_id.as_str() == id)
        .map(|r| r.pod_uid.clone())
}

#[test]
fn the_claimed_pod_keeps_the_route_against_an_older_impostor() {
    let mut index = Index::new(3000);
    // Mallory's pod for alice's id, made first in another namespace (kubectl, say).
    let impostor = pod(
        "ws-mallory-demo",
        "other",
        "demo",
        "u-m",
        "2026-11-29T09:00:00Z",
        "mallory",
    );
    index.pod_applied(&impostor);
    assert_eq!(
        routed(&index, "demo").as_deref(),
        Some("u-m"),
        "unclaimed: the only pod"
    );
    // Alice claims the id and her pod appears: the route follows the claim.
    index.claim_applied(&claim(
        "demo",
        "ws",
        "ws-alice-demo",
        "alice",
        "c1",
        "2026-11-29T09:30:00Z",
    ));
    let alice = pod(
        "ws-alice-demo",
        "ws",
        "demo",
        "u-a",
        "2026-11-29T09:30:01Z",
        "alice",
    );
    let e = index.pod_applied(&alice);
    assert_eq!(upserted(&e), [("demo".to_string(), "u-a".to_string())]);
    // Mallory's pod changing again does not take it back.
    let e = index.pod_applied(&impostor);
    assert!(e.changes.is_empty(), "{e:?}");
    assert_eq!(routed(&index, "demo").as_deref(), Some("u-a"));
}

#[test]
fn without_a_claim_the_older_pod_keeps_the_route_and_a_stop_reroutes_at_once() {
    let mut index = Index::new(3000);
    let first = pod(
        "ws-a-demo",
        "ws",
        "demo",
        "u-1",
        "2026-11-29T09:00:00Z",
        "alice",
    );
    let second = pod(
        "ws-b-demo",
        "other",
        "demo",
        "u-2",
        "2026-11-29T09:05:00Z",
        "bob",
    );
    index.pod_applied(&first);
    index.pod_applied(&second);
    assert_eq!(
        routed(&index, "demo").as_deref(),
        Some("u-1"),
        "the older pod"
    );
    // The older one stops: the other live pod is routed in the same step.
    let e = index.pod_applied(&terminating(first.clone()));
    assert_eq!(upserted(&e), [("demo".to_string(), "u-2".to_string())]);
    index.pod_deleted(&first);
    assert_eq!(routed(&index, "demo").as_deref(), Some("u-2"));
    // The last one goes: the route is removed, fenced by its pod UID.
    let e = index.pod_deleted(&second);
    assert_eq!(
        e.changes,
        [Change::Remove {
            workspace_id: WorkspaceId::parse("demo").expect("id"),
            pod_uid: "u-2".into()
        }]
    );
}

#[test]
fn a_stop_of_a_later_pod_never_cuts_the_claim_holder_off() {
    let mut index = Index::new(3000);
    index.claim_applied(&claim(
        "demo",
        "ws",
        "ws-alice-demo",
        "alice",
        "c1",
        "2026-11-29T09:00:00Z",
    ));
    let alice = pod(
        "ws-alice-demo",
        "ws",
        "demo",
        "u-a",
        "2026-11-29T09:00:01Z",
        "alice",
    );
    let other = pod(
        "ws-mallory-demo",
        "ws2",
        "demo",
        "u-m",
        "2026-11-29T09:10:00Z",
        "mallory",
    );
    index.pod_applied(&alice);
    index.pod_applied(&other);
    let e = index.pod_deleted(&other);
    assert!(e.changes.is_empty(), "alice's route is untouched: {e:?}");
    assert_eq!(routed(&index, "demo").as_deref(), Some("u-a"));
}

#[test]
fn claims_are_released_with_their_pod_or_when_abandoned() {
    let mut index = Index::new(3000);
    index.claim_applied(&claim(
        "demo",
        "ws",
        "ws-alice-demo",
        "alice",
        "c1",
        "2026-11-29T09:00:00Z",
    ));
    let alice = pod(
        "ws-alice-demo",
        "ws",
        "demo",
        "u-a",
        "2026-11-29T09:00:01Z",
        "alice",
    );
    index.pod_applied(&alice);
    let e = index.pod_applied(&terminating(alice));
    assert_eq!(
        e.release,
        [Release {
            name: "nogoo9-ws-demo".into(),
            uid: "c1".into(),
            rv: "rv-c1".into()
        }]
    );
    // A claim whose pod never came: released only after the grace period.
    index.claim_applied(&claim(
        "lost",
        "ws",
        "ws-x-lost",
        "x",
        "c2",
        "2026-11-29T09:00:00Z",
    ));
    assert!(
        index
            .abandoned_claims("2026-11-29T09:00:30Z", CLAIM_GRACE)
            .iter()
            .all(|r| r.uid != "c2")
    );
    assert!(
        index
            .abandoned_claims("2026-11-29T09:01:01Z", CLAIM_GRACE)
            .iter()
            .any(|r| r.uid == "c2")
    );
    // A claim deleted and made again: the old delete event does not drop the new claim.
    index.claim_applied(&claim(
        "lost",
        "ws",
        "ws-x-lost",
        "x",
        "c3",
        "2026-11-29T09:02:00Z",
    ));
    index.claim_deleted(&claim(
        "lost",
        "ws",
        "ws-x-lost",
        "x",
        "c2",
        "2026-11-29T09:00:00Z",
    ));
    assert_eq!(
        index
            .claim(&WorkspaceId::parse("lost").expect("id"))
            .map(|c| c.uid.as_str()),
        Some("c3")
    );
}

#[test]
fn claims_round_trip_and_foreign_config_maps_are_not_claims() {
    let cm = claim(
        "demo",
        "ws",
        "ws-alice-demo",
        "alice",
        "c1",
        "2026-11-29T09:00:00Z",
    );
    let c = Claim::from_config_map(&cm).expect("a claim");
    assert_eq!(
        (c.namespace.as_str(), c.pod.as_str(), c.owner.as_deref()),
        ("ws", "ws-alice-demo", Some("alice"))
    );
    let mut renamed = cm.clone();
    renamed.metadata.name = Some("nogoo9-ws-other".into());
    assert!(
        Claim::from_config_map(&renamed).is_none(),
        "the name must be the id's"
    );
    let mut unlabelled = cm;
    unlabelled.metadata.labels = None;
    assert!(Claim::from_config_map(&unlabelled).is_none());
}

#[test]
fn a_suspended_claim_keeps_its_id_and_routes_as_suspended() {
    let mut index = Index::new(3000);
    let mut cm = claim(
        "sleepy",
        "ws",
        "ws-a-sleepy",
        "alice",
        "c9",
        "2026-11-29T09:00:00Z",
    );
    index.claim_applied(&cm);
    let alice = pod(
        "ws-a-sleepy",
        "ws",
        "sleepy",
        "u-s",
        "2026-11-29T09:00:01Z",
        "alice",
    );
    index.pod_applied(&alice);
    // Suspended (the claim says so), then its pod stops: the claim is not released, and
    // the id routes as suspended, to its owner.
    cm.data.as_mut().map(|d| {
        d.insert("state".into(), "suspended".into());
        d.insert("wake".into(), "true".into())
    });
    index.claim_applied(&cm);
    let e = index.pod_applied(&terminating(alice.clone()));
    assert!(e.release.is_empty(), "{:?}", e.release);
    let e = index.pod_deleted(&alice);
    assert!(e.release.is_empty());
    let route = index
        .routes()
        .find(|r| r.workspace_id.as_str() == "sleepy")
        .cloned()
        .expect("a route for the suspended id");
    assert!(route.web.suspended && route.web.wake_on_request);
    assert_eq!(route.owner_sub.as_deref(), Some("alice"));
    assert!(route.upstream().is_none());
    assert!(
        index
            .abandoned_claims("2026-11-30T09:00:00Z", std::time::Duration::from_secs(60))
            .is_empty(),
        "a suspended claim is never abandoned"
    );
}
