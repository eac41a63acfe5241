//! A user's pod spec runs as nobody else and reads no Secret, whichever tool it comes
//! through; Pod Security `baseline` holds its AppArmor and host-process rules.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::{Value, json};

use super::{ROOT, System, ok, refused, spec};

/// `create_pod` arguments: one container, plus `extra`.
fn pod(name: &str, extra: Value) -> Value {
    let mut args = json!({"name": name, "containers": [{"name": "c", "image": "node:20-alpine"}]});
    if let (Value::Object(a), Value::Object(e)) = (&mut args, extra) {
        a.extend(e);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_pod_runs_as_the_workspace_account_and_reads_no_secret() {
    let sys = System::start(1).await;
    let mallory = sys.mcp(0, "mallory").await;
    let cases = [
        (
            pod("m1", json!({"serviceAccountName": "ws-sa-victim"})),
            "serviceAccountName",
        ),
        (
            pod("m1", json!({"serviceAccountName": "nocrd9"})),
            "serviceAccountName",
        ),
        (
            pod(
                "m1",
                json!({"volumes": [{"name": "s", "secret": {"secretName": "db"}}]}),
            ),
            "Secret volumes are not allowed",
        ),
        (
            pod(
                "m1",
                json!({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]}),
            ),
            "only downwardAPI and configMap projections",
        ),
        (
            json!({"name": "m1", "containers": [{"name": "c", "image": "x",
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]}),
            "secretKeyRef",
        ),
        (
            json!({"name": "m1", "containers": [{"name": "c", "image": "x", "envFrom": [{"secretRef": {"name": "db"}}]}]}),
            "secretRef",
        ),
        (
            json!({"name": "m1", "containers": [{"name": "c", "image": "local", "command": ["sh", "-c", "id"]}]}),
            "`local` images",
        ),
    ];
    for (args, words) in cases {
        refused(&sys, &mallory, "create_pod", args, words).await;
    }
    // The same rules for an inline spawn and for template overrides.
    let mut inline = spec();
    inline["serviceAccountName"] = json!("nocrd9");
    refused(
        &sys,
        &mallory,
        "spawn_workspace",
        json!({"id": "m-ws", "spec": inline, "wait": false}),
        "serviceAccountName",
    )
    .await;
    let root = sys.mcp(0, ROOT).await;
    ok(
        &root,
        "create_template",
        json!({"name": "plain", "spec": spec()}),
    )
    .await;
    refused(
        &sys,
        &mallory,
        "create_pod_from_template",
        json!({"templateRef": "plain", "name": "m2", "topLevelOverrides": {"serviceAccountName": "nocrd9", "automountServiceAccountToken": true}}),
        "serviceAccountName",
    )
    .await;
    // What she may create runs as the workspace account, without its token, and is hers.
    ok(
        &mallory,
        "create_pod",
        pod("m-ok", json!({"automountServiceAccountToken": true})),
    )
    .await;
    let made = Api::<Pod>::namespaced(sys.kube().await, "default")
        .get("m-ok")
        .await
        .expect("the pod");
    let s = made.spec.clone().unwrap_or_default();
    assert_eq!(s.service_account_name.as_deref(), Some("default"));
    assert_eq!(s.automount_service_account_token, Some(false));
    let annotations = made.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("nogoo9/user-sub").map(String::as_str),
        Some("mallory")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_forbids_unconfined_apparmor_and_host_processes() {
    let sys = System::start(1).await;
    let alice = sys.mcp(0, "alice").await;
    let cases = [
        (
            pod(
                "a1",
                json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
            ),
            "spec.securityContext.appArmorProfile.type",
        ),
        (
            pod(
                "a1",
                json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}}),
            ),
            "AppArmor",
        ),
        (
            pod(
                "a1",
                json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}),
            ),
            "hostProcess",
        ),
        (
            json!({"name": "a1", "containers": [{"name": "c", "image": "x",
                "securityContext": {"windowsOptions": {"hostProcess": true}}}]}),
            "hostProcess",
        ),
    ];
    for (args, words) in cases {
        refused(&sys, &alice, "create_pod", args, words).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_keeps_the_spawners_keys_and_the_spec_rules() {
    let sys = System::start(1).await;
    let mallory = sys.mcp(0, "mallory").await;
    ok(&mallory, "create_pod", pod("m-p", json!({}))).await;
    let cases = [
        (
            json!({"metadata": {"$patch": "replace", "labels": {"a": "b"}}}),
            "patch directives are not allowed under metadata",
        ),
        (
            json!({"metadata": {"labels": {"$patch": "replace", "a": "b"}}}),
            "metadata.labels.$patch",
        ),
        (
            json!({"metadata": {"$retainKeys": ["name"]}}),
            "metadata.$retainKeys",
        ),
        (
            json!({"metadata": {"labels": {"nogoo9/user-sub": null}}}),
            "reserved",
        ),
        (
            json!({"metadata": {"annotations": {"nogoo9/user-sub": "victim"}}}),
            "reserved",
        ),
        (
            json!({"spec": {"containers": [{"name": "c", "image": "local"}]}}),
            "`local` images",
        ),
        (
            json!({"spec": {"containers": [{"name": "c", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]}]}}),
            // The API server refuses this one (a pod's env is immutable), like a real one.
            "pod updates may not change fields",
        ),
    ];
    for (patch, words) in cases {
        refused(
            &sys,
            &mallory,
            "patch_pod",
            json!({"name": "m-p", "patch": patch}),
            words,
        )
        .await;
    }
    // An ordinary patch of her own pod still works, and the owner keys are as they were.
    ok(
        &mallory,
        "patch_pod",
        json!({"name": "m-p", "patch": {"metadata": {"labels": {"tier": "web"}}}}),
    )
    .await;
    let made = Api::<Pod>::namespaced(sys.kube().await, "default")
        .get("m-p")
        .await
        .expect("the pod");
    let labels = made.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("tier").map(String::as_str), Some("web"));
    assert_eq!(
        labels.get("nogoo9/user-sub").map(String::as_str),
        Some("mallory")
    );
}
