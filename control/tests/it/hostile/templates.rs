//! Templates belong to administrators: a user can neither write one nor smuggle a
//! template's powers (init containers, pre-stop hooks, an IAM role) into an inline spawn.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use super::{ROOT, System, ok, refused, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cannot_write_templates_or_take_their_powers_inline() {
    let sys = System::start(1).await;
    let root = sys.mcp(0, ROOT).await;
    ok(
        &root,
        "create_template",
        json!({"name": "shared-t", "spec": spec(),
               "annotations": {"nogoo9/init-image": "alpine/git", "nogoo9/init-command": "true",
                               "nogoo9/required-context": "PROJECT"}}),
    )
    .await;
    let mallory = sys.mcp(0, "mallory").await;
    refused(
        &sys,
        &mallory,
        "update_template",
        json!({"name": "shared-t", "annotations": {"nogoo9/init-image": "mallory/harvest", "nogoo9/init-command": "steal"}}),
        "for administrators",
    )
    .await;
    refused(
        &sys,
        &mallory,
        "delete_template",
        json!({"name": "shared-t"}),
        "for administrators",
    )
    .await;
    refused(&sys, &mallory, "create_template", json!({"name": "mine", "spec": spec(), "annotations": {"nogoo9/iam-role-arn": "arn:aws:iam::1:role/admin"}}), "for administrators").await;
    for (annotation, value) in [
        (
            "nogoo9/iam-role-arn",
            "arn:aws:iam::123456789012:role/admin",
        ),
        ("nogoo9/init-image", "mallory/init"),
        ("nogoo9/pre-stop-sidecar-image", "mallory/sidecar"),
        // The lifecycle's template powers are templates' too.
        ("nogoo9/warm-pool-size", "50"),
        ("nogoo9/volume-size", "100Ti"),
        ("nogoo9/wake-on-request", "true"),
        ("nogoo9/context-delivery", "file"),
    ] {
        refused(
            &sys,
            &mallory,
            "spawn_workspace",
            json!({"id": "m-inline", "spec": spec(), "annotations": {annotation: value}, "wait": false}),
            "not allowed in an inline spawn",
        )
        .await;
    }
    let mut smuggled = spec();
    smuggled["annotations"] = json!({"nogoo9/iam-role-arn": "arn:aws:iam::1:role/admin"});
    refused(
        &sys,
        &mallory,
        "spawn_workspace",
        json!({"id": "m-inline", "spec": smuggled, "wait": false}),
        "reserved",
    )
    .await;
    refused(
        &sys,
        &mallory,
        "get_template",
        json!({"name": "shared-t", "namespace": "kube-system"}),
        "templates are read from namespace default",
    )
    .await;

    // The next user's spawn runs the administrator's init container, untouched.
    let alice = sys.mcp(0, "alice").await;
    ok(&alice, "spawn_workspace", json!({"id": "alice-t", "templateRef": "shared-t", "context": {"PROJECT": "p"}, "wait": false})).await;
    let pods = Api::<Pod>::namespaced(sys.kube().await, "default")
        .list(&ListParams::default().labels("nogoo9/workspace-id=alice-t"))
        .await
        .expect("pods");
    let init = pods.items[0]
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    assert_eq!(init[0].image.as_deref(), Some("alpine/git"));
}
