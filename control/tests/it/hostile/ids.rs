//! Workspace ids are global and claimed atomically: nobody takes another user's id in
//! another namespace, through another replica, or with a pod made outside the tools,
//! and no stop cuts the owner off.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

use super::{ROOT, System, ok, reachable, refused, spec};
use crate::harness::{call, text};

async fn live_pods(sys: &System, id: &str) -> Vec<Pod> {
    Api::<Pod>::all(sys.kube().await)
        .list(&ListParams::default().labels(&format!("nogoo9/workspace-id={id}")))
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_is_one_workspace_everywhere_and_its_owner_keeps_the_route() {
    let sys = System::start(1).await;
    let kube = sys.kube().await;
    Api::<Namespace>::all(kube.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "other"}})).expect("ns"),
        )
        .await
        .expect("a second namespace");
    let alice = sys.mcp(0, "alice").await;
    ok(
        &alice,
        "spawn_workspace",
        json!({"id": "shared", "spec": spec()}),
    )
    .await;
    assert_eq!(
        reachable(&sys, "shared", "alice").await["pod"],
        "ws-alice-shared"
    );

    let mallory = sys.mcp(0, "mallory").await;
    refused(
        &sys,
        &mallory,
        "spawn_workspace",
        json!({"id": "shared", "spec": spec(), "wait": false}),
        "already taken",
    )
    .await;
    refused(
        &sys,
        &mallory,
        "spawn_workspace",
        json!({"id": "shared", "spec": spec(), "namespace": "other", "wait": false}),
        "",
    )
    .await;
    // Not even an administrator makes a second workspace of it: they get alice's.
    let root = sys.mcp(0, ROOT).await;
    let r = ok(
        &root,
        "spawn_workspace",
        json!({"id": "shared", "spec": spec(), "namespace": "other", "wait": false}),
    )
    .await;
    assert_eq!(
        (r["existing"].clone(), r["podName"].clone()),
        (json!(true), json!("ws-alice-shared"))
    );
    assert_eq!(live_pods(&sys, "shared").await.len(), 1);

    // A pod made outside the tools (kubectl), newer, for the same id: the route stays.
    let impostor: Pod = serde_json::from_value(json!({
        "metadata": {"name": "ws-mallory-shared", "namespace": "other",
                     "labels": {"nogoo9/type": "workspace", "nogoo9/workspace-id": "shared"},
                     "annotations": {"nogoo9/user-sub": "mallory"}},
        "spec": {"containers": [{"name": "app", "image": "node:20-alpine"}]}
    }))
    .expect("a pod");
    let others = Api::<Pod>::namespaced(kube.clone(), "other");
    others
        .create(&PostParams::default(), &impostor)
        .await
        .expect("the impostor");
    shared::testkit::eventually_async(
        "the impostor to run",
        std::time::Duration::from_secs(20),
        || async {
            others
                .get("ws-mallory-shared")
                .await
                .is_ok_and(|p| p.status.and_then(|s| s.phase).as_deref() == Some("Running"))
        },
    )
    .await;
    assert_eq!(
        reachable(&sys, "shared", "alice").await["pod"],
        "ws-alice-shared"
    );
    let bearer = format!("Bearer {}", sys.token("mallory"));
    assert_eq!(
        sys.gateway_get("/route/shared/", &[("authorization", &bearer)])
            .await
            .status,
        404
    );
    // It goes: alice is not cut off.
    others
        .delete("ws-mallory-shared", &DeleteParams::default())
        .await
        .expect("delete");
    shared::testkit::eventually_async(
        "the impostor to be gone",
        std::time::Duration::from_secs(30),
        || async {
            others
                .get_opt("ws-mallory-shared")
                .await
                .is_ok_and(|p| p.is_none())
        },
    )
    .await;
    assert_eq!(
        reachable(&sys, "shared", "alice").await["pod"],
        "ws-alice-shared"
    );
    // Mallory's stop of it is a missing workspace, and changes nothing.
    refused(
        &sys,
        &mallory,
        "stop_workspace",
        json!({"id": "shared"}),
        "workspace shared not found in namespace default",
    )
    .await;
    assert_eq!(
        reachable(&sys, "shared", "alice").await["pod"],
        "ws-alice-shared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_spawns_through_two_replicas_make_one_workspace() {
    let sys = System::start(2).await;
    let mut sessions = Vec::new();
    for i in 0..20 {
        let sub = if i % 2 == 0 { "alice" } else { "bob" };
        sessions.push((sub, sys.mcp(i % 2, sub).await));
    }
    let calls = sessions.iter().map(|(sub, c)| async move {
        let r = call(
            c,
            "spawn_workspace",
            json!({"id": "race", "spec": spec(), "wait": false}),
        )
        .await;
        (*sub, r)
    });
    let results = futures::future::join_all(calls).await;
    let live = live_pods(&sys, "race").await;
    assert_eq!(
        live.len(),
        1,
        "{:?}",
        live.iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    let owner = live[0]
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("nogoo9/user-sub"))
        .cloned()
        .unwrap_or_default();
    let mut outcomes = BTreeSet::new();
    for (sub, r) in &results {
        if *sub == owner {
            assert_ne!(
                r.is_error,
                Some(true),
                "the owner's own spawns all succeed: {}",
                text(r)
            );
            assert_eq!(
                r.structured_content.clone().unwrap_or_default()["podName"],
                live[0].metadata.name.clone().unwrap_or_default()
            );
        } else {
            assert_eq!(
                r.is_error,
                Some(true),
                "the other user got the workspace: {}",
                text(r)
            );
            assert!(text(r).contains("already taken"), "{}", text(r));
        }
        outcomes.insert(*sub);
    }
    assert_eq!(outcomes.len(), 2);
    // The route goes to the owner, and only the owner.
    let other = if owner == "alice" { "bob" } else { "alice" };
    reachable(&sys, "race", &owner).await;
    let bearer = format!("Bearer {}", sys.token(other));
    assert_eq!(
        sys.gateway_get("/route/race/", &[("authorization", &bearer)])
            .await
            .status,
        404
    );
}
