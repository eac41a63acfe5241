use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::pod_security::Level;
use crate::templates::parse_spec;

fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn template(annotations: &[(&str, &str)]) -> Template {
    Template {
        name: "notebook".into(),
        namespace: "default".into(),
        annotations: ann(annotations),
        spec: parse_spec(&json!({"containers": [
            {"name": "main", "image": "node:20-alpine", "env": [{"name": "MODE", "value": "x"}]}
        ]}))
        .unwrap_or_else(|e| panic!("{e}")),
    }
}

#[test]
fn a_pool_is_refused_when_the_template_needs_what_only_a_spawn_has() {
    assert_eq!(size(&ann(&[])), Ok(0));
    assert_eq!(size(&ann(&[("nogoo9/warm-pool-size", "3")])), Ok(3));
    assert_eq!(size(&ann(&[("nogoo9/warm-pool-size", "0")])), Ok(0));
    for bad in ["-1", "many", "51"] {
        let e = size(&ann(&[("nogoo9/warm-pool-size", bad)])).expect_err(bad);
        assert!(e.contains("whole number from 0 to 50"), "{e}");
    }
    let env = ann(&[
        ("nogoo9/warm-pool-size", "2"),
        ("nogoo9/required-context", "PROJECT,REPO"),
    ]);
    let e = size(&env).expect_err("context in the environment");
    assert!(
        e.contains("PROJECT, REPO") && e.contains("nogoo9/context-delivery: file"),
        "{e}"
    );
    let mut file = env.clone();
    file.insert("nogoo9/context-delivery".into(), "file".into());
    assert_eq!(size(&file), Ok(2));
    for (other, value) in [
        ("nogoo9/iam-role-arn", "arn:aws:iam::1:role/r"),
        ("nogoo9/volume-size", "1Gi"),
    ] {
        let mut a = file.clone();
        a.insert(other.into(), value.into());
        let e = size(&a).expect_err(other);
        assert!(e.contains(other), "{e}");
    }
    let e = delivery(&ann(&[("nogoo9/context-delivery", "mail")])).expect_err("unknown");
    assert!(e.contains("\"env\" or \"file\""), "{e}");
}

#[test]
fn a_pool_pod_is_unowned_unroutable_and_gets_its_context_from_a_file() {
    let t = template(&[
        ("nogoo9/warm-pool-size", "2"),
        ("nogoo9/required-context", "PROJECT"),
        ("nogoo9/context-delivery", "file"),
    ]);
    let pod = pool_pod(Level::Baseline, &t, "ws").unwrap_or_else(|e| panic!("{e}"));
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("nogoo9/type").map(String::as_str), Some("pool"));
    assert_eq!(labels.get("nogoo9/pool"), Some(&key(&t)));
    assert!(!labels.contains_key("nogoo9/workspace-id"));
    assert!(!labels.contains_key("nogoo9/user-sub"));
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    assert!(!annotations.contains_key("nogoo9/user-sub"));
    assert!(!annotations.contains_key("nogoo9/context"));
    assert_eq!(pod.metadata.name, None);
    assert_eq!(
        pod.metadata.generate_name.as_deref(),
        Some("pool-notebook-")
    );
    let spec = pod.spec.clone().unwrap_or_default();
    let main = &spec.containers[0];
    let env: Vec<&str> = main.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(env, ["MODE"], "no id or owner in the environment");
    let mount = main
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "nogoo9-context");
    assert_eq!(mount.map(|m| m.mount_path.as_str()), Some(CONTEXT_DIR));
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "nogoo9-context");
    let paths: Vec<String> = volume
        .and_then(|v| v.downward_api.as_ref())
        .and_then(|d| d.items.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            format!(
                "{}={}",
                i.path,
                i.field_ref.map(|f| f.field_path).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            "context.json=metadata.annotations['nogoo9/context']",
            "workspace-id=metadata.labels['nogoo9/workspace-id']",
            "owner=metadata.annotations['nogoo9/user-sub']"
        ]
    );
    // Resizing the pool or retitling the template keeps the warm pods.
    let mut resized = t.clone();
    resized
        .annotations
        .insert("nogoo9/warm-pool-size".into(), "5".into());
    resized
        .annotations
        .insert("nogoo9/description".into(), "bigger".into());
    let same = pool_pod(Level::Baseline, &resized, "ws").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        annotation(&pod, TEMPLATE_HASH_ANNOTATION),
        annotation(&same, TEMPLATE_HASH_ANNOTATION)
    );
    // A new template version is a new fingerprint (its pods are replaced, never given).
    let mut edited = t.clone();
    edited
        .annotations
        .insert("nogoo9/idle-timeout".into(), "5m".into());
    let again = pool_pod(Level::Baseline, &edited, "ws").unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(
        annotation(&pod, TEMPLATE_HASH_ANNOTATION),
        annotation(&again, TEMPLATE_HASH_ANNOTATION)
    );
}

#[test]
fn file_delivery_moves_context_out_of_the_environment() {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "ws-a-w"},
        "spec": {"containers": [{"name": "main", "image": "x", "env": [
            {"name": "PROJECT", "value": "apollo"}, {"name": "NOGOO9_OWNER", "value": "a"},
            {"name": "KEEP", "value": "1"}]}]}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let context = BTreeMap::from([("PROJECT".to_string(), "apollo".to_string())]);
    deliver_by_file(&mut pod, Some(&context));
    let env: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers[0]
                .env
                .iter()
                .flatten()
                .map(|e| e.name.clone())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(env, ["KEEP"]);
    assert_eq!(
        pod.metadata
            .annotations
            .unwrap_or_default()
            .get("nogoo9/context")
            .map(String::as_str),
        Some("{\"PROJECT\":\"apollo\"}")
    );
}

#[test]
fn a_pod_that_never_gets_ready_is_stuck_after_the_start_grace() {
    let pod_created = |ago: u64, ready: bool| -> Pod {
        let created = k8s_openapi::jiff::Timestamp::now()
            - k8s_openapi::jiff::SignedDuration::from_secs(ago as i64);
        serde_json::from_value(json!({
            "metadata": {"creationTimestamp": created.to_string()},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(!is_stuck(&pod_created(60, false)), "still starting");
    assert!(is_stuck(&pod_created(3600, false)), "an hour and not Ready");
    assert!(!is_stuck(&pod_created(3600, true)), "warm");
}
