//! `create_pod` and `patch_pod`: pod writes through MCP. Specs are checked like
//! templates (the bad field is named) and against the Pod Security Standard, and the
//! `nogoo9/` labels and annotations — which decide routing and ownership — can only be
//! written by the spawner (otherwise a caller could claim another user's route).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::pod_security;
use crate::templates;

/// The prefix of the keys only the spawner writes.
pub const RESERVED_PREFIX: &str = "nogoo9/";

fn reserved<'a>(keys: impl Iterator<Item = &'a String>, what: &str) -> Result<(), ToolError> {
    let bad: Vec<&String> = keys.filter(|k| k.starts_with(RESERVED_PREFIX)).collect();
    if bad.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = bad.iter().map(|s| s.as_str()).collect();
    Err(ToolError {
        code: 403,
        message: format!(
            "{what} {} are reserved for the workspace spawner (they decide routing and ownership); use spawn_workspace",
            list.join(", ")
        ),
    })
}

/// `create_pod`: a plain pod from a PodSpec given as JSON.
pub async fn create_pod(
    ctx: &Context,
    namespace: Option<&str>,
    name: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: Value,
) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(namespace)?;
    let parsed = templates::parse_spec(&spec).map_err(|e| ToolError::bad_input(e.to_string()))?;
    create_checked(ctx, &ns, name, labels, annotations, parsed.pod).await
}

/// Creates a plain pod after the checks every tool-made pod passes: no reserved
/// `nogoo9/` keys, and the configured Pod Security Standard.
pub async fn create_checked(
    ctx: &Context,
    ns: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: k8s_openapi::api::core::v1::PodSpec,
) -> Result<Outcome, ToolError> {
    reserved(labels.keys(), "labels")?;
    reserved(annotations.keys(), "annotations")?;
    let violations = pod_security::check(&spec, ctx.pod_security);
    if !violations.is_empty() {
        return Err(ToolError::bad_input(format!(
            "the pod {}",
            pod_security::describe(ctx.pod_security, &violations)
        )));
    }
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await?;
    Ok(Outcome {
        text: format!("Created pod {name} in namespace {ns}"),
        structured: json!({"name": name, "namespace": ns}),
    })
}

pub async fn patch_pod(
    ctx: &Context,
    namespace: Option<&str>,
    name: &str,
    patch: Map<String, Value>,
    who: &crate::caller::Caller,
) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(namespace)?;
    let meta = patch.get("metadata");
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = meta.and_then(|m| m.get(field)) {
            reserved(m.keys(), field)?;
        }
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    crate::pods::ensure_access(&api, name, who).await?;
    let pod = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(Value::Object(patch)),
        )
        .await?;
    let rv = pod.metadata.resource_version.unwrap_or_default();
    Ok(Outcome {
        text: format!("Patched pod {name} (resourceVersion: {rv})"),
        structured: json!({"name": name, "namespace": ns, "resourceVersion": rv}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_keys_are_refused_by_name() {
        let keys = [
            "app".to_string(),
            "nogoo9/user-sub".to_string(),
            "nogoo9/workspace-id".to_string(),
        ];
        let err = reserved(keys.iter(), "labels").expect_err("reserved");
        assert_eq!(err.code, 403);
        assert!(
            err.message
                .starts_with("labels nogoo9/user-sub, nogoo9/workspace-id are reserved"),
            "{}",
            err.message
        );
        assert!(reserved(["app".to_string()].iter(), "labels").is_ok());
    }
}
