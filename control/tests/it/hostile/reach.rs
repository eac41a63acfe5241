//! A user reaches only pods they own, only in the workspace namespace; anyone else's
//! pod answers exactly like a missing one; names are checked before any API call, and
//! no object body reaches control's log.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use super::{ROOT, System, ok, refused, spec};
use crate::harness::{call, text};

fn plain_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "infra"}},
        "spec": {"containers": [{"name": "c", "image": "registry/infra:1"}]}
    }))
    .expect("a pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_reach_only_their_own_pods_in_the_workspace_namespace() {
    let sys = System::start(1).await;
    let kube = sys.kube().await;
    for ns in ["default", "kube-system"] {
        Api::<Pod>::namespaced(kube.clone(), ns)
            .create(&PostParams::default(), &plain_pod("infra"))
            .await
            .expect("an operator's pod");
    }
    let mallory = sys.mcp(0, "mallory").await;
    let alice = sys.mcp(0, "alice").await;
    ok(
        &alice,
        "spawn_workspace",
        json!({"id": "alice-1", "spec": spec(), "wait": false}),
    )
    .await;

    refused(
        &sys,
        &mallory,
        "list_pods",
        json!({"namespace": "kube-system"}),
        "users work only in namespace default",
    )
    .await;
    refused(
        &sys,
        &mallory,
        "get_pod",
        json!({"name": "infra", "namespace": "kube-system"}),
        "users work only",
    )
    .await;
    refused(&sys, &mallory, "create_pod", json!({"name": "x", "namespace": "kube-system", "containers": [{"name": "c", "image": "x"}]}), "users work only").await;
    refused(
        &sys,
        &mallory,
        "list_namespaces",
        json!({}),
        "for administrators",
    )
    .await;
    refused(
        &sys,
        &mallory,
        "create_template",
        json!({"name": "t", "spec": spec()}),
        "for administrators",
    )
    .await;

    // Someone else's pod, an operator's pod and a missing pod answer alike.
    for tool in ["get_pod", "get_pod_logs", "delete_pod"] {
        for name in ["infra", "ws-alice-alice-1", "ghost"] {
            let r = refused(&sys, &mallory, tool, json!({"name": name}), "not found").await;
            assert_eq!(
                text(&r),
                format!("Error: pod {name} not found in namespace default"),
                "{tool} {name}"
            );
            assert_eq!(
                r.structured_content.clone().unwrap_or_default()["code"],
                404
            );
        }
    }
    refused(
        &sys,
        &mallory,
        "patch_pod",
        json!({"name": "infra", "patch": {"spec": {"containers": [{"name": "c", "image": "evil"}]}}}),
        "pod infra not found in namespace default",
    )
    .await;
    let listed = ok(&mallory, "list_pods", json!({})).await;
    assert_eq!(listed["pods"], json!([]), "mallory sees nothing of others");
    let r = call(&mallory, "current_namespace", json!({})).await;
    assert!(text(&r).contains("Role: user"), "{}", text(&r));

    // An administrator reaches all of it.
    let root = sys.mcp(0, ROOT).await;
    let all = ok(&root, "list_pods", json!({"namespace": "kube-system"})).await;
    assert_eq!(all["pods"][0]["name"], "infra");
    let r = call(&root, "current_namespace", json!({})).await;
    assert!(text(&r).contains("Role: admin"), "{}", text(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_checked_before_any_api_call_and_no_body_is_logged() {
    let sys = System::start(1).await;
    let alice = sys.mcp(0, "alice").await;
    let marker = "context-value-only-alice-knows-7f3a";
    ok(
        &alice,
        "spawn_workspace",
        json!({"id": "alice-2", "spec": spec(), "context": {"API_KEY": marker}, "wait": false}),
    )
    .await;
    let mallory = sys.mcp(0, "mallory").await;
    for name in ["?", "a/b", "", "..", "ws-alice-alice-2/log"] {
        refused(&sys, &mallory, "get_pod", json!({"name": name}), "pod name").await;
    }
    refused(
        &sys,
        &alice,
        "get_pod_logs",
        json!({"name": "ws-alice-alice-2", "container": "a/b?previous=true"}),
        "container name",
    )
    .await;
    let log = sys.log(0);
    assert!(
        !log.contains(marker),
        "a context value reached control's log:\n{log}"
    );
}
