//! Inputs of the template and workspace tools (the original's field names).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

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
