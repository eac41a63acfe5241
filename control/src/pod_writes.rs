//! `create_pod` and `patch_pod`: pod writes through MCP. Specs are checked like
//! templates (the bad field is named), against the Pod Security Standard and, for a
//! user, against `policy::spec` (no other ServiceAccount, no Secret, no `local` image).
//! The `nogoo9/` labels and annotations — which decide routing and ownership — belong
//! to the spawner: nobody sets them through these tools, a user's pod gets the owner
//! keys from the server, and a patch can neither add, change nor remove them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};
use shared::names;

use crate::caller::Caller;
use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::{pod_security, policy, templates};

/// The prefix of the keys only the spawner writes.
pub const RESERVED_PREFIX: &str = "nogoo9/";

fn reserved<'a>(keys: impl Iterator<Item = &'a String>, what: &str) -> Result<(), ToolError> {
    let bad: Vec<&String> = keys.filter(|k| k.starts_with(RESERVED_PREFIX)).collect();
    if bad.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = bad.iter().map(|s| s.as_str()).collect();
    Err(ToolError::forbidden(format!(
        "{what} {} are reserved for the workspace spawner (they decide routing and ownership); use spawn_workspace",
        list.join(", ")
    )))
}

/// The `nogoo9/` entries of a map (labels or annotations).
fn reserved_entries(map: Option<&BTreeMap<String, String>>) -> BTreeMap<&String, &String> {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(RESERVED_PREFIX))
        .collect()
}

/// `create_pod`: a plain pod from a PodSpec given as JSON.
pub async fn create_pod(
    ctx: &Context,
    who: &Caller,
    namespace: Option<&str>,
    name: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: Value,
) -> Result<Outcome, ToolError> {
    let ns = policy::pod_namespace(ctx, who, namespace)?;
    let parsed = templates::parse_spec(&spec).map_err(|e| ToolError::bad_input(e.to_string()))?;
    create_checked(ctx, who, &ns, name, labels, annotations, parsed.pod).await
}

/// Creates a plain pod after the checks every tool-made pod passes: a valid name, no
/// reserved `nogoo9/` keys, the user spec policy for users, and the configured Pod
/// Security Standard. A user's pod carries the owner keys, so it is theirs alone.
pub async fn create_checked(
    ctx: &Context,
    who: &Caller,
    ns: &str,
    name: &str,
    mut labels: BTreeMap<String, String>,
    mut annotations: BTreeMap<String, String>,
    mut spec: PodSpec,
) -> Result<Outcome, ToolError> {
    crate::valid::object(name, "pod")?;
    reserved(labels.keys(), "labels")?;
    reserved(annotations.keys(), "annotations")?;
    if let Some(sub) = who.restricted_to() {
        policy::spec::restrict(&mut spec, &ctx.workspace_service_account)
            .map_err(ToolError::forbidden)?;
        labels.insert(
            names::USER_SUB_LABEL.into(),
            crate::spawner::owner_label(sub),
        );
        labels.insert(
            names::MANAGED_BY_LABEL.into(),
            names::MANAGED_BY_SPAWNER.into(),
        );
        annotations.insert(names::USER_SUB_ANNOTATION.into(), sub.into());
    }
    let violations = pod_security::check(&spec, &annotations, ctx.pod_security);
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

/// `patch_pod`: a strategic merge patch, applied only if its result keeps every
/// `nogoo9/` key as it was, still meets the Pod Security Standard and (for a user) the
/// spec policy. The result is computed by the API server (a dry run) and the real patch
/// carries the checked resourceVersion, so what is applied is what was checked.
pub async fn patch_pod(
    ctx: &Context,
    namespace: Option<&str>,
    name: &str,
    mut patch: Map<String, Value>,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    let ns = policy::pod_namespace(ctx, who, namespace)?;
    let meta = patch.get("metadata");
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = meta.and_then(|m| m.get(field)) {
            reserved(m.keys(), field)?;
        }
    }
    policy::spec::patch_metadata(&patch).map_err(ToolError::forbidden)?;
    let before = crate::pods::owned_pod(ctx, &ns, name, who).await?;
    let rv = before.metadata.resource_version.clone().unwrap_or_default();
    match patch
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(m) => {
            m.insert("resourceVersion".into(), Value::String(rv));
        }
        _ => return Err(ToolError::bad_input("patch.metadata must be an object")),
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let body = Patch::Strategic(Value::Object(patch));
    let after = api
        .patch(name, &PatchParams::default().dry_run(), &body)
        .await?;
    check_patched(ctx, who, &before, &after)?;
    let pod = api
        .patch(name, &PatchParams::default(), &body)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => ToolError::conflict(format!(
                "pod {name} changed while the patch was checked; read it again and retry"
            )),
            other => other.into(),
        })?;
    let rv = pod.metadata.resource_version.unwrap_or_default();
    Ok(Outcome {
        text: format!("Patched pod {name} (resourceVersion: {rv})"),
        structured: json!({"name": name, "namespace": ns, "resourceVersion": rv}),
    })
}

/// What a patch may not do to a pod, judged on its result.
fn check_patched(ctx: &Context, who: &Caller, before: &Pod, after: &Pod) -> Result<(), ToolError> {
    let (b, a) = (&before.metadata, &after.metadata);
    if reserved_entries(b.labels.as_ref()) != reserved_entries(a.labels.as_ref())
        || reserved_entries(b.annotations.as_ref()) != reserved_entries(a.annotations.as_ref())
    {
        return Err(ToolError::forbidden(
            "the patch would add, change or remove nogoo9/ labels or annotations, which belong to the workspace spawner",
        ));
    }
    let spec = after.spec.clone().unwrap_or_default();
    if who.restricted_to().is_some() {
        let problems = policy::spec::problems(&spec, &ctx.workspace_service_account);
        if !problems.is_empty() {
            return Err(ToolError::forbidden(problems.join("; ")));
        }
    }
    let annotations = a.annotations.clone().unwrap_or_default();
    let violations = pod_security::check(&spec, &annotations, ctx.pod_security);
    if !violations.is_empty() {
        return Err(ToolError::bad_input(format!(
            "the patched pod {}",
            pod_security::describe(ctx.pod_security, &violations)
        )));
    }
    Ok(())
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
