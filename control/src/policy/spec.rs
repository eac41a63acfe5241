//! What a user's pod spec may hold (an administrator's, and a template's, are trusted):
//! pure, every refusal names the field. Whatever arrives from a user — `create_pod`, an
//! inline `spawn_workspace` spec, `create_pod_from_template` overrides, a `patch_pod`
//! result — passes through here before the API server sees it.
//!
//! - It runs as the workspace ServiceAccount (`--workspace-service-account`), whose
//!   token is never mounted: naming another account is refused.
//! - It reads no Secret: no `secret` volumes, no projected sources but `downwardAPI`
//!   and `configMap`, no `secretKeyRef`, no `envFrom.secretRef`; volumes are limited to
//!   `emptyDir`, `configMap`, `downwardAPI` and those projections (no claim on someone
//!   else's PersistentVolumeClaim, no CSI driver that hands out secrets).
//! - It runs no `local` image: kube-sim runs those as processes on the host.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;
use shared::names;

/// ConfigMaps a user's pod may not read: the id claims (owners and pod names of every
/// workspace), where they share the workspace namespace.
fn is_claim(config_map: &str) -> bool {
    config_map.starts_with("nogoo9-ws-") || config_map.starts_with(crate::quota::SLOT_PREFIX)
}

/// Images kube-sim runs as processes on the host (`local`, `local/…`, `local:…`).
pub fn is_local_image(image: &str) -> bool {
    image == "local" || image.starts_with("local/") || image.starts_with("local:")
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = (String, &Container)> {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let main = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c));
    init.chain(main)
}

/// Every reason a user's spec is refused (empty: allowed).
pub fn problems(spec: &PodSpec, workspace_sa: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (field, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("serviceAccount", &spec.service_account),
    ] {
        if let Some(sa) = value
            && sa != workspace_sa
        {
            out.push(format!(
                "spec.{field}: {sa:?} is not allowed; users' pods run as {workspace_sa:?}"
            ));
        }
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let mounted_maps = v.config_map.iter().map(|c| c.name.as_str()).chain(
            v.projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .filter_map(|s| s.config_map.as_ref().map(|c| c.name.as_str())),
        );
        for name in mounted_maps.filter(|n| is_claim(n)) {
            out.push(format!(
                "spec.volumes[{i}]: ConfigMap {name} holds a workspace id claim and is not readable"
            ));
        }
        if v.secret.is_some() {
            out.push(format!(
                "spec.volumes[{i}].secret: Secret volumes are not allowed"
            ));
        } else if let Some(p) = &v.projected {
            for (j, source) in p.sources.iter().flatten().enumerate() {
                if source.downward_api.is_none() && source.config_map.is_none() {
                    out.push(format!(
                        "spec.volumes[{i}].projected.sources[{j}]: only downwardAPI and configMap projections are allowed"
                    ));
                }
            }
        } else if v.empty_dir.is_none() && v.config_map.is_none() && v.downward_api.is_none() {
            out.push(format!(
                "spec.volumes[{i}]: users' pods may use only emptyDir, configMap, downwardAPI and projected (downwardAPI, configMap) volumes"
            ));
        }
    }
    for (path, c) in containers(spec) {
        if c.image.as_deref().is_some_and(is_local_image) {
            out.push(format!(
                "{path}.image: `local` images run on the simulator's host and are not allowed"
            ));
        }
        for (j, e) in c.env.iter().flatten().enumerate() {
            let from = e.value_from.as_ref();
            if from.is_some_and(|f| f.secret_key_ref.is_some()) {
                out.push(format!(
                    "{path}.env[{j}].valueFrom.secretKeyRef: reading Secrets is not allowed"
                ));
            }
            if from
                .and_then(|f| f.config_map_key_ref.as_ref())
                .is_some_and(|r| is_claim(&r.name))
            {
                out.push(format!(
                    "{path}.env[{j}].valueFrom.configMapKeyRef: workspace id claims are not readable"
                ));
            }
        }
        for (j, e) in c.env_from.iter().flatten().enumerate() {
            if e.secret_ref.is_some() {
                out.push(format!(
                    "{path}.envFrom[{j}].secretRef: reading Secrets is not allowed"
                ));
            }
            if e.config_map_ref.as_ref().is_some_and(|r| is_claim(&r.name)) {
                out.push(format!(
                    "{path}.envFrom[{j}].configMapRef: workspace id claims are not readable"
                ));
            }
        }
    }
    out
}

/// Checks a user's spec and pins what a user does not choose: the ServiceAccount and
/// that its token is not mounted.
pub fn restrict(spec: &mut PodSpec, workspace_sa: &str) -> Result<(), String> {
    let found = problems(spec, workspace_sa);
    if !found.is_empty() {
        return Err(found.join("; "));
    }
    spec.service_account_name = Some(workspace_sa.to_string());
    spec.service_account = None;
    spec.automount_service_account_token = Some(false);
    Ok(())
}

/// Inline spawn annotations from a user: only the description and the tag. Behaviour
/// annotations (init image and command, pre-stop hooks, IAM role, grace period, port…)
/// come only from a template ConfigMap, which only administrators write.
pub fn inline_annotations(annotations: &BTreeMap<String, String>) -> Result<(), String> {
    let bad: Vec<&str> = annotations
        .keys()
        .map(String::as_str)
        .filter(|k| *k != names::DESCRIPTION_ANNOTATION && *k != names::TAG_ANNOTATION)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "annotations {} are not allowed in an inline spawn; they take effect only from a template (only {} and {} may be given)",
            bad.join(", "),
            names::DESCRIPTION_ANNOTATION,
            names::TAG_ANNOTATION
        ))
    }
}

/// Strategic-merge directives under `metadata` (`$patch`, `$retainKeys`,
/// `$setElementOrder/…`, `$deleteFromPrimitiveList/…`) could remove or reorder the
/// spawner's keys wholesale: refused, at any depth under `metadata`.
pub fn patch_metadata(patch: &serde_json::Map<String, Value>) -> Result<(), String> {
    fn directives(v: &Value, path: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = v {
            for (k, child) in map {
                let here = format!("{path}.{k}");
                if k.starts_with('$') {
                    out.push(here.clone());
                }
                directives(child, &here, out);
            }
        }
    }
    let mut found = Vec::new();
    if let Some(meta) = patch.get("metadata") {
        directives(meta, "metadata", &mut found);
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "patch directives are not allowed under metadata: {}",
            found.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).expect("a PodSpec")
    }

    #[test]
    fn a_plain_spec_is_pinned_to_the_workspace_account() {
        let mut s = spec(json!({"containers": [{"name": "w", "image": "node:20"}],
            "volumes": [{"name": "e", "emptyDir": {}}, {"name": "c", "configMap": {"name": "x"}},
                        {"name": "p", "projected": {"sources": [{"downwardAPI": {"items": []}}, {"configMap": {"name": "x"}}]}}]}));
        restrict(&mut s, "ws").expect("allowed");
        assert_eq!(s.service_account_name.as_deref(), Some("ws"));
        assert_eq!(s.automount_service_account_token, Some(false));
        let mut named = spec(
            json!({"serviceAccountName": "ws", "automountServiceAccountToken": true,
            "containers": [{"name": "w", "image": "x"}]}),
        );
        restrict(&mut named, "ws").expect("its own account is fine");
        assert_eq!(
            named.automount_service_account_token,
            Some(false),
            "never mounted"
        );
    }

    #[test]
    fn every_way_to_another_identity_or_a_secret_is_named() {
        let s = spec(json!({
            "serviceAccountName": "ws-sa-victim", "serviceAccount": "nocrd9",
            "volumes": [
                {"name": "s", "secret": {"secretName": "db"}},
                {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}, {"secret": {"name": "db"}}]}},
                {"name": "pvc", "persistentVolumeClaim": {"claimName": "ws-other"}},
                {"name": "csi", "csi": {"driver": "secrets-store.csi.k8s.io"}}
            ],
            "initContainers": [{"name": "i", "image": "local"}],
            "containers": [{"name": "c", "image": "local/sh",
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}],
                "envFrom": [{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "ok"}}]}]
        }));
        let found = problems(&s, "default");
        let fields: Vec<&str> = found
            .iter()
            .map(|p| p.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            fields,
            [
                "spec.serviceAccountName",
                "spec.serviceAccount",
                "spec.volumes[0].secret",
                "spec.volumes[1].projected.sources[0]",
                "spec.volumes[1].projected.sources[1]",
                "spec.volumes[2]",
                "spec.volumes[3]",
                "spec.initContainers[0].image",
                "spec.containers[0].image",
                "spec.containers[0].env[0].valueFrom.secretKeyRef",
                "spec.containers[0].envFrom[0].secretRef",
            ]
        );
        let mut s = s;
        assert!(restrict(&mut s, "default").is_err());
        assert_eq!(
            s.service_account_name.as_deref(),
            Some("ws-sa-victim"),
            "a refused spec is left as it was"
        );
    }

    #[test]
    fn id_claims_are_not_readable_from_a_users_pod() {
        let s = spec(json!({
            "volumes": [{"name": "c", "configMap": {"name": "nogoo9-ws-victim"}},
                        {"name": "p", "projected": {"sources": [{"configMap": {"name": "nogoo9-ws-x"}}]}}],
            "containers": [{"name": "c", "image": "x",
                "env": [{"name": "O", "valueFrom": {"configMapKeyRef": {"name": "nogoo9-ws-v", "key": "owner"}}}],
                "envFrom": [{"configMapRef": {"name": "nogoo9-ws-v"}}]}]
        }));
        assert_eq!(
            problems(&s, "default").len(),
            4,
            "{:?}",
            problems(&s, "default")
        );
    }

    #[test]
    fn inline_annotations_carry_only_description_and_tag() {
        let ok = BTreeMap::from([
            ("nogoo9/description".to_string(), "d".to_string()),
            ("nogoo9/tag".to_string(), "t".to_string()),
        ]);
        assert!(inline_annotations(&ok).is_ok());
        let bad = BTreeMap::from([
            (
                "nogoo9/iam-role-arn".to_string(),
                "arn:aws:iam::1:role/admin".to_string(),
            ),
            ("nogoo9/init-image".to_string(), "evil".to_string()),
        ]);
        let e = inline_annotations(&bad).expect_err("behaviour annotations");
        assert!(
            e.contains("nogoo9/iam-role-arn") && e.contains("nogoo9/init-image"),
            "{e}"
        );
    }

    #[test]
    fn metadata_patch_directives_are_refused_at_any_depth() {
        let patch = |v: Value| v.as_object().cloned().expect("object");
        assert!(patch_metadata(&patch(json!({"metadata": {"labels": {"app": "x"}}}))).is_ok());
        assert!(
            patch_metadata(&patch(json!({"spec": {"$patch": "replace"}}))).is_ok(),
            "spec is the API's business"
        );
        for bad in [
            json!({"metadata": {"$patch": "replace", "labels": {}}}),
            json!({"metadata": {"labels": {"$patch": "replace"}}}),
            json!({"metadata": {"$retainKeys": ["name"]}}),
            json!({"metadata": {"annotations": {"$deleteFromPrimitiveList/x": ["a"]}}}),
            json!({"metadata": {"$setElementOrder/finalizers": []}}),
        ] {
            let e = patch_metadata(&patch(bad.clone())).expect_err("directive");
            assert!(e.contains("metadata"), "{bad}: {e}");
        }
    }
}
