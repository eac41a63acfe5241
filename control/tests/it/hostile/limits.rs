//! Per-user limits that races cannot beat: 20 spawns of different ids by one user at
//! once, through two control replicas, with `MAX_WORKSPACES_PER_USER=3`, leave exactly
//! three workspaces; the refusals say why and leave nothing behind (no pod, no claim);
//! administrators are not limited; a stopped workspace gives its place back.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::harness::{call, text};

use super::{ROOT, System, ok, spec};

async fn live_workspaces(sys: &System, owner: &str) -> usize {
    Api::<Pod>::namespaced(sys.kube().await, "default")
        .list(
            &ListParams::default()
                .labels(&format!("nogoo9/type=workspace,nogoo9/user-sub={owner}")),
        )
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_spawns_by_one_user_leave_exactly_the_limit() {
    let sys = System::start_with(2, &[("MAX_WORKSPACES_PER_USER", "3")], &[]).await;
    let mut sessions = Vec::new();
    for i in 0..20 {
        sessions.push(sys.mcp(i % 2, "alice").await);
    }
    let calls = sessions.iter().enumerate().map(|(i, c)| async move {
        call(
            c,
            "spawn_workspace",
            json!({"id": format!("mine-{i}"), "spec": spec(), "wait": false}),
        )
        .await
    });
    let results = futures::future::join_all(calls).await;
    let ok_count = results.iter().filter(|r| r.is_error != Some(true)).count();
    assert_eq!(
        ok_count,
        3,
        "{:?}",
        results.iter().map(text).collect::<Vec<_>>()
    );
    assert_eq!(live_workspaces(&sys, "alice").await, 3);
    for r in results.iter().filter(|r| r.is_error == Some(true)) {
        assert!(
            text(r).contains("already have 3 live workspaces"),
            "{}",
            text(r)
        );
    }
    // Refused spawns leave no id claim behind.
    let claims = Api::<ConfigMap>::namespaced(sys.kube().await, "default")
        .list(&ListParams::default().labels("nogoo9/claim=workspace"))
        .await
        .expect("claims");
    assert_eq!(claims.items.len(), 3, "one claim per live workspace");

    // An administrator is not limited.
    let root = sys.mcp(0, ROOT).await;
    for i in 0..4 {
        ok(
            &root,
            "spawn_workspace",
            json!({"id": format!("root-{i}"), "spec": spec(), "wait": false}),
        )
        .await;
    }
    // A stopped workspace frees its place, on either replica.
    let alice = &sessions[1];
    let first_ok = results
        .iter()
        .position(|r| r.is_error != Some(true))
        .unwrap_or_default();
    ok(
        alice,
        "stop_workspace",
        json!({"id": format!("mine-{first_ok}")}),
    )
    .await;
    ok(
        &sessions[0],
        "spawn_workspace",
        json!({"id": "mine-again", "spec": spec(), "wait": false}),
    )
    .await;
    let again = call(
        &sessions[0],
        "spawn_workspace",
        json!({"id": "one-too-many", "spec": spec(), "wait": false}),
    )
    .await;
    assert_eq!(again.is_error, Some(true), "{}", text(&again));
}
