//! Every tool's input, as the agent sees it (the original's field names): the doc comments
//! become the JSON Schema descriptions. The MCP layer turns these into the domain's calls.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceArg {
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Accepted for compatibility with the original; identity never comes from it.
    pub jwt_payload: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateArg {
    /// Template (ConfigMap) name.
    pub name: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpawnArgs {
    /// Workspace id: lowercase letters, digits and '-', at most 63. Spawning an id that
    /// exists returns that workspace.
    pub id: String,
    /// Template: `pod-template://ns/name`, `ns/name` or `name`.
    pub template_ref: Option<String>,
    /// Inline PodSpec (with optional `labels`/`annotations`), used when there is no templateRef.
    pub spec: Option<Value>,
    /// Inline spawner annotations, used with `spec`.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Values for the template's required context; all are passed to the workspace as env.
    pub context: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility with the original; identity never comes from it.
    pub jwt_payload: Option<Value>,
    /// Return only when the workspace answers through the gateway (default true).
    pub wait: Option<bool>,
    /// How long to wait (default 120).
    pub wait_timeout_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopArgs {
    /// Workspace id.
    pub id: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Accepted for compatibility with the original; identity never comes from it.
    pub jwt_payload: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeArgs {
    /// Workspace id.
    pub id: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Accepted for compatibility with the original; identity never comes from it.
    pub jwt_payload: Option<Value>,
    /// Return only when the workspace answers through the gateway (default true).
    pub wait: Option<bool>,
    /// How long to wait (default 120).
    pub wait_timeout_seconds: Option<u32>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListPodsArgs {
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Label selector, e.g. "app=my-app,env=prod".
    pub label_selector: Option<String>,
    /// Field selector, e.g. "status.phase=Running".
    pub field_selector: Option<String>,
    /// Maximum pods to return (default 500).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodRef {
    /// Pod name.
    pub name: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeletePodArgs {
    /// Pod name.
    pub name: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Seconds the pod gets to stop (its preStop hook runs first); default: the pod's own.
    pub grace_period_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodLogsArgs {
    /// Pod name.
    pub name: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Container (default: the one named "agent", else the first).
    pub container: Option<String>,
    /// Lines from the end (default 500 when limitBytes is not set either).
    pub tail_lines: Option<u32>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<u32>,
    /// At most this many bytes.
    pub limit_bytes: Option<u32>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: Option<bool>,
    /// The previous (terminated) run of the container.
    pub previous: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateWriteArgs {
    /// Template (ConfigMap) name.
    pub name: String,
    /// Namespace (defaults to the server's namespace; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Shown by list_templates (annotation nogoo9/description).
    pub description: Option<String>,
    /// A version tag (annotation nogoo9/tag).
    pub tag: Option<String>,
    /// Extra ConfigMap labels (the template label is always kept).
    pub labels: Option<BTreeMap<String, String>>,
    /// Spawner annotations (nogoo9/required-context, nogoo9/init-image, …).
    pub annotations: Option<BTreeMap<String, String>>,
    /// The PodSpec (with optional labels/annotations for the pod). Required to create.
    pub spec: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromTemplateArgs {
    /// Template: `pod-template://ns/name`, `ns/name` or `name`.
    pub template_ref: String,
    /// The new pod's name.
    pub name: String,
    /// The pod's namespace (defaults to the server's; ignored in namespaced mode).
    pub namespace: Option<String>,
    /// Per-container overrides, matched by `name`: image, command, args, env (merged by name),
    /// envFrom, resources, volumeMounts.
    pub container_overrides: Option<Vec<Map<String, Value>>>,
    /// Top-level PodSpec fields that replace the template's (labels/annotations merge per key).
    pub top_level_overrides: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryArgs {
    /// Only repositories whose name starts with this prefix.
    pub repository: Option<String>,
    /// At most this many images (default 500).
    pub limit: Option<u32>,
}

impl CreatePodArgs {
    /// The PodSpec these arguments describe (every field but the pod's name, namespace,
    /// labels and annotations), as JSON.
    pub fn pod_spec(&self) -> Value {
        let mut spec = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for meta in ["name", "namespace", "labels", "annotations"] {
            spec.remove(meta);
        }
        spec.retain(|_, v| !v.is_null());
        Value::Object(spec)
    }
}
