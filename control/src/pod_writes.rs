//! `create_pod` and `patch_pod`: pod writes through MCP. Specs are checked like
//! templates (the bad field is named) and against the Pod Security Standard, and the
//! `nogoo9/` labels and annotations — which decide routing and ownership — can only be
//! written by the spawner (otherwise a caller could claim another user's route).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::outcome::{Outcome, ToolError};
use crate::context::Context;
use crate::pod_security;
use crate::templates;

/// The prefix of the keys only the spawner writes.
pub const RESERVED_PREFIX: &str = "nogoo9/";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePodArgs {
    /// Pod name (an RFC 1123 subdomain).
    pub name: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Pod labels (keys starting with nogoo9/ are reserved for the spawner).
    pub labels: Option<BTreeMap<String, String>>,
    /// Pod annotations (keys starting with nogoo9/ are reserved for the spawner).
    pub annotations: Option<BTreeMap<String, String>>,
    /// Containers (at least one; each needs name and image).
    pub containers: Vec<Value>,
    pub init_containers: Option<Vec<Value>>,
    pub volumes: Option<Vec<Value>>,
    /// Always, OnFailure or Never.
    pub restart_policy: Option<String>,
    pub service_account_name: Option<String>,
    pub automount_service_account_token: Option<bool>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub node_name: Option<String>,
    pub host_network: Option<bool>,
    #[serde(rename = "hostPID")]
    pub host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    /// ClusterFirst, ClusterFirstWithHostNet, Default or None.
    pub dns_policy: Option<String>,
    pub image_pull_secrets: Option<Vec<Value>>,
    pub security_context: Option<Value>,
    pub tolerations: Option<Vec<Value>>,
    pub affinity: Option<Value>,
    pub topology_spread_constraints: Option<Vec<Value>>,
    pub priority_class_name: Option<String>,
    pub priority: Option<i32>,
    pub runtime_class_name: Option<String>,
    pub termination_grace_period_seconds: Option<u32>,
    pub active_deadline_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchPodArgs {
    /// Pod name.
    pub name: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// A strategic merge patch (e.g. {"metadata": {"labels": {"tier": "web"}}}).
    pub patch: Map<String, Value>,
}

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

pub async fn create_pod(ctx: &Context, args: CreatePodArgs) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(args.namespace.as_deref())?;
    let labels = args.labels.clone().unwrap_or_default();
    let annotations = args.annotations.clone().unwrap_or_default();
    let mut spec = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            spec.insert(k.to_string(), v);
        }
    };
    put("containers", Some(json!(args.containers)));
    put("initContainers", args.init_containers.map(Value::from));
    put("volumes", args.volumes.map(Value::from));
    put("restartPolicy", args.restart_policy.map(Value::from));
    put(
        "serviceAccountName",
        args.service_account_name.map(Value::from),
    );
    put(
        "automountServiceAccountToken",
        args.automount_service_account_token.map(Value::from),
    );
    put("nodeSelector", args.node_selector.map(|m| json!(m)));
    put("nodeName", args.node_name.map(Value::from));
    put("hostNetwork", args.host_network.map(Value::from));
    put("hostPID", args.host_pid.map(Value::from));
    put("hostIPC", args.host_ipc.map(Value::from));
    put("dnsPolicy", args.dns_policy.map(Value::from));
    put("imagePullSecrets", args.image_pull_secrets.map(Value::from));
    put("securityContext", args.security_context);
    put("tolerations", args.tolerations.map(Value::from));
    put("affinity", args.affinity);
    put(
        "topologySpreadConstraints",
        args.topology_spread_constraints.map(Value::from),
    );
    put(
        "priorityClassName",
        args.priority_class_name.map(Value::from),
    );
    put("priority", args.priority.map(Value::from));
    put("runtimeClassName", args.runtime_class_name.map(Value::from));
    put(
        "terminationGracePeriodSeconds",
        args.termination_grace_period_seconds.map(Value::from),
    );
    put(
        "activeDeadlineSeconds",
        args.active_deadline_seconds.map(Value::from),
    );
    let parsed = templates::parse_spec(&Value::Object(spec))
        .map_err(|e| ToolError::bad_input(e.to_string()))?;
    create_checked(ctx, &ns, &args.name, labels, annotations, parsed.pod).await
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
    args: PatchPodArgs,
    who: &crate::caller::Caller,
) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(args.namespace.as_deref())?;
    let meta = args.patch.get("metadata");
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = meta.and_then(|m| m.get(field)) {
            reserved(m.keys(), field)?;
        }
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    super::pods::ensure_access(&api, &args.name, who).await?;
    let pod = api
        .patch(
            &args.name,
            &PatchParams::default(),
            &Patch::Strategic(Value::Object(args.patch)),
        )
        .await?;
    let rv = pod.metadata.resource_version.unwrap_or_default();
    Ok(Outcome {
        text: format!("Patched pod {} (resourceVersion: {rv})", args.name),
        structured: json!({"name": args.name, "namespace": ns, "resourceVersion": rv}),
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
