//! CRUD through kube-rs: config maps, pods, service accounts, namespaces, patches,
//! optimistic concurrency, graceful delete, SelfSubjectAccessReview.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_sim::SimConfig;
use serde_json::json;

use crate::harness::{self, api_code, api_message, api_reason, eventually, wait_ready};

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"nogoo9/pod-template": "true"}},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()
    }))
    .expect("config map")
}

#[tokio::test]
async fn config_map_crud_with_real_metadata_and_errors() {
    let sim = harness::sim().await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await.expect("client"), "default");
    let created = cms
        .create(&PostParams::default(), &cm("tpl", &[("spec", "{}")]))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert_eq!(meta.uid.as_ref().map(String::len), Some(36));
    assert!(meta.creation_timestamp.is_some());
    let rv1: u64 = meta
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("numeric rv");

    let err = cms
        .create(&PostParams::default(), &cm("tpl", &[]))
        .await
        .expect_err("duplicate");
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(409), "AlreadyExists")
    );
    assert_eq!(api_message(&err), "configmaps \"tpl\" already exists");

    // Update with the current version succeeds and bumps it; the stale one is a 409.
    let mut next = created.clone();
    next.data = Some([("spec".to_string(), "{\"containers\":[]}".to_string())].into());
    let updated = cms
        .replace("tpl", &PostParams::default(), &next)
        .await
        .expect("update");
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("rv");
    assert!(rv2 > rv1);
    let err = cms
        .replace("tpl", &PostParams::default(), &next)
        .await
        .expect_err("stale");
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(409), "Conflict")
    );
    assert!(
        api_message(&err).contains("the object has been modified"),
        "{}",
        api_message(&err)
    );

    // generateName
    let mut generated = cm("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("tpl-".into());
    let g = cms
        .create(&PostParams::default(), &generated)
        .await
        .expect("generateName");
    let name = g.metadata.name.expect("name");
    assert!(name.starts_with("tpl-") && name.len() == 9, "{name}");

    let listed = cms
        .list(&ListParams::default().labels("nogoo9/pod-template=true"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);

    let err = cms.get("missing").await.expect_err("404");
    assert_eq!(
        (api_code(&err), api_message(&err).as_str()),
        (Some(404), "configmaps \"missing\" not found")
    );

    let deleted = cms
        .delete("tpl", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(
        deleted.is_right(),
        "a config map is deleted at once and answered with a Status"
    );
    assert_eq!(
        api_code(&cms.get("tpl").await.expect_err("gone")),
        Some(404)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_objects_are_refused_with_the_field_named() {
    let sim = harness::sim().await;
    let client = sim.client().await.expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let err = cms
        .create(&PostParams::default(), &cm("Bad_Name", &[]))
        .await
        .expect_err("bad name");
    assert_eq!(api_code(&err), Some(422));
    assert!(
        api_message(&err).contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{}",
        api_message(&err)
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let bad = harness::pod_from(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}),
    );
    let err = pods
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("no image");
    assert_eq!(api_code(&err), Some(422));
    assert!(
        api_message(&err).contains("spec.containers[0].image: Required value"),
        "{}",
        api_message(&err)
    );

    let missing_ns: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let err = missing_ns
        .create(&PostParams::default(), &cm("x", &[]))
        .await
        .expect_err("no namespace");
    assert_eq!(
        (api_code(&err), api_message(&err).as_str()),
        (Some(404), "namespaces \"nowhere\" not found")
    );

    let sa_pod = harness::pod_from(
        json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "ghost", "containers": [{"name": "a", "image": "x"}]}}),
    );
    let err = pods
        .create(&PostParams::default(), &sa_pod)
        .await
        .expect_err("no service account");
    assert_eq!(api_code(&err), Some(403));
    assert!(
        api_message(&err).contains("serviceaccount \"ghost\" not found"),
        "{}",
        api_message(&err)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn patches_of_every_content_type() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("ws"))
        .await
        .expect("create");
    let pp = PatchParams::default();
    let p = pods
        .patch("ws", &pp, &Patch::Strategic(json!({"metadata": {"labels": {"tier": "web"}}, "spec": {"containers": [{"name": "workspace", "image": "node:22-alpine"}]}})))
        .await
        .expect("strategic");
    assert_eq!(
        p.spec.as_ref().map(|s| s.containers.len()),
        Some(1),
        "merge key kept the list"
    );
    assert_eq!(
        p.spec
            .as_ref()
            .and_then(|s| s.containers[0].image.clone())
            .as_deref(),
        Some("node:22-alpine")
    );
    let p = pods
        .patch(
            "ws",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"tier": null, "x": "1"}}})),
        )
        .await
        .expect("merge");
    let labels = p.metadata.labels.expect("labels");
    assert!(!labels.contains_key("tier") && labels.contains_key("x"));
    let p = pods
        .patch(
            "ws",
            &pp,
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]),
                )
                .expect("patch"),
            ),
        )
        .await
        .expect("json patch");
    assert_eq!(
        p.metadata
            .annotations
            .and_then(|a| a.get("a").cloned())
            .as_deref(),
        Some("b")
    );

    let err = pods
        .patch(
            "ws",
            &pp,
            &Patch::Merge(json!({"spec": {"restartPolicy": "Never"}})),
        )
        .await
        .expect_err("immutable");
    assert_eq!(api_code(&err), Some(422));
    assert!(api_message(&err).contains("pod updates may not change fields"));
    let err = pods
        .patch(
            "ws",
            &pp,
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "test", "path": "/metadata/name", "value": "other"}]),
                )
                .expect("patch"),
            ),
        )
        .await
        .expect_err("failed test op");
    assert_eq!(api_code(&err), Some(422));
    let err = pods
        .patch("missing", &pp, &Patch::Merge(json!({})))
        .await
        .expect_err("404");
    assert_eq!(api_code(&err), Some(404));
    sim.shutdown().await;
}

#[tokio::test]
async fn graceful_pod_delete_runs_the_pre_stop_hook_then_removes_the_pod() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    let marker = tempfile::tempdir().expect("tmp");
    let marker_file = marker.path().join("prestop");
    let pod = harness::pod_from(json!({
        "metadata": {"name": "hooked"},
        "spec": {"terminationGracePeriodSeconds": 10, "containers": [{
            "name": "main", "image": "local",
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"],
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", format!("echo ran > {}", marker_file.display())]}}}
        }]}
    }));
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let running = wait_ready(&pods, "hooked").await;
    let uid = running.metadata.uid.clone().expect("uid");
    let answer = pods
        .delete("hooked", &DeleteParams::default())
        .await
        .expect("delete");
    let terminating = answer
        .left()
        .expect("a graceful delete answers with the object");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(10));
    eventually(15, "pod removal", || async {
        pods.get_opt("hooked")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&marker_file).ok().as_deref(),
        Some("ran\n"),
        "preStop ran before removal"
    );

    // Preconditions are honoured.
    pods.create(&PostParams::default(), &harness::node_workspace_pod("pre"))
        .await
        .expect("create");
    let err = pods
        .delete(
            "pre",
            &DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            },
        )
        .await
        .expect_err("uid mismatch");
    assert_eq!(api_code(&err), Some(409));
    let gone = pods
        .delete(
            "pre",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("force");
    // Like the real server (ReturnDeletedObject), the deleted pod comes back…
    let pod = gone.left().expect("the deleted pod, not a Status");
    assert_eq!(pod.metadata.name.as_deref(), Some("pre"));
    // …and it is gone at once.
    let err = pods.get("pre").await.expect_err("grace 0 deletes at once");
    assert_eq!(api_code(&err), Some(404));
    sim.shutdown().await;
}

#[tokio::test]
async fn namespaces_terminate_with_their_contents() {
    let sim = harness::sim().await;
    let client = sim.client().await.expect("client");
    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        names,
        vec!["default", "kube-public", "kube-system"],
        "a new cluster's namespaces"
    );
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-a"}})).expect("ns");
    nss.create(&PostParams::default(), &ns)
        .await
        .expect("create ns");
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    assert!(
        sas.get_opt("default").await.expect("get").is_some(),
        "the default service account exists at once"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team-a");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("w"))
        .await
        .expect("pod");
    wait_ready(&pods, "w").await;
    nss.delete("team-a", &DeleteParams::default())
        .await
        .expect("delete ns");
    let err = pods
        .create(&PostParams::default(), &harness::node_workspace_pod("late"))
        .await
        .expect_err("terminating");
    assert_eq!(api_code(&err), Some(403));
    assert!(api_message(&err).contains("being terminated"));
    eventually(20, "namespace removal", || async {
        nss.get_opt("team-a")
            .await
            .ok()
            .and_then(|n| n.is_none().then_some(()))
    })
    .await;
    let err = nss
        .delete("default", &DeleteParams::default())
        .await
        .expect_err("protected");
    assert_eq!(api_code(&err), Some(403));
    sim.shutdown().await;
}

#[tokio::test]
async fn denied_verbs_are_forbidden_and_reported_by_access_reviews() {
    let mut config = SimConfig::for_tests();
    config.deny = vec![
        "delete:pods@team-a".parse().expect("rule"),
        "get:pods/log".parse().expect("rule"),
    ];
    let sim = harness::sim_with(config).await;
    let client = sim.client().await.expect("client");
    let ssar = |verb: &str, resource: &str, sub: Option<&str>, ns: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: sub.map(str::to_string),
                namespace: Some(ns.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let allowed = |r: SelfSubjectAccessReview| r.status.map(|s| s.allowed);
    assert_eq!(
        allowed(
            reviews
                .create(
                    &PostParams::default(),
                    &ssar("delete", "pods", None, "team-a")
                )
                .await
                .expect("ssar")
        ),
        Some(false)
    );
    assert_eq!(
        allowed(
            reviews
                .create(
                    &PostParams::default(),
                    &ssar("delete", "pods", None, "default")
                )
                .await
                .expect("ssar")
        ),
        Some(true)
    );
    assert_eq!(
        allowed(
            reviews
                .create(
                    &PostParams::default(),
                    &ssar("get", "pods", Some("log"), "default")
                )
                .await
                .expect("ssar")
        ),
        Some(false)
    );
    assert_eq!(
        allowed(
            reviews
                .create(
                    &PostParams::default(),
                    &ssar("list", "configmaps", None, "default")
                )
                .await
                .expect("ssar")
        ),
        Some(true)
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("p"))
        .await
        .expect("create");
    wait_ready(&pods, "p").await;
    let err = pods
        .logs("p", &Default::default())
        .await
        .expect_err("logs denied");
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(403), "Forbidden")
    );
    assert!(
        api_message(&err).contains("cannot get resource \"pods/log\""),
        "{}",
        api_message(&err)
    );
    sim.shutdown().await;
}
