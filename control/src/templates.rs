//! Template ConfigMaps → pod specs. Pure.
//!
//! A template is a ConfigMap labelled `nogoo9/pod-template=true` whose `spec` key holds a
//! PodSpec as JSON, optionally with `labels` and `annotations` keys that become the pod's
//! metadata; its annotations carry the spawner's directives. A spec that is not a valid
//! PodSpec is refused with the offending field named.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};
use serde_json::Value;
use shared::names;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    pub namespace: String,
    pub annotations: BTreeMap<String, String>,
    pub spec: TemplateSpec,
}

/// The `spec` of a template (or of an inline spawn): the PodSpec plus pod metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSpec {
    pub pod: PodSpec,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("ConfigMap {0:?} is not a pod template (it lacks the label nogoo9/pod-template=true)")]
    NotATemplate(String),
    #[error("Template {0:?} has no data.spec")]
    NoSpec(String),
    #[error("the spec is not valid JSON: {0}")]
    Json(String),
    #[error("the spec is invalid: {field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn string_map(v: Option<Value>, field: &str) -> Result<BTreeMap<String, String>, TemplateError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(invalid(format!("{field}.{k}"), "must be a string")),
            })
            .collect(),
        Some(_) => Err(invalid(field, "must be an object of strings")),
    }
}

/// Checks and decodes a spec given as JSON (a template's `data.spec` or an inline spec).
pub fn parse_spec(value: &Value) -> Result<TemplateSpec, TemplateError> {
    let Value::Object(map) = value else {
        return Err(invalid("spec", "must be a JSON object (a PodSpec)"));
    };
    let mut map = map.clone();
    let labels = string_map(map.remove("labels"), "labels")?;
    let annotations = string_map(map.remove("annotations"), "annotations")?;
    let (pod, _, unknown) = shared::typed::decode::<PodSpec>(&Value::Object(map))
        .map_err(|e| invalid(e.path, e.message))?;
    if let Some(field) = unknown.first() {
        return Err(invalid(
            field.clone(),
            "unknown field (not part of a PodSpec)",
        ));
    }
    if pod.containers.is_empty() {
        return Err(invalid("containers", "at least one container is required"));
    }
    for (i, c) in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .enumerate()
    {
        if c.name.trim().is_empty() {
            return Err(invalid(format!("containers[{i}].name"), "required"));
        }
        if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
            return Err(invalid(format!("containers[{i}].image"), "required"));
        }
    }
    Ok(TemplateSpec {
        pod,
        labels,
        annotations,
    })
}

/// Whether a ConfigMap is a template (`nogoo9/pod-template=true`): the only ConfigMaps
/// the template tools read or write.
pub fn is_template(cm: &ConfigMap) -> bool {
    cm.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(names::POD_TEMPLATE_LABEL))
        .is_some_and(|v| v == "true")
}

/// Parses a template ConfigMap (which must carry the template label).
pub fn from_config_map(cm: &ConfigMap) -> Result<Template, TemplateError> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    if !is_template(cm) {
        return Err(TemplateError::NotATemplate(name));
    }
    let raw = cm
        .data
        .as_ref()
        .and_then(|d| d.get("spec"))
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| TemplateError::NoSpec(name.clone()))?;
    let value: Value = serde_json::from_str(raw).map_err(|e| TemplateError::Json(e.to_string()))?;
    Ok(Template {
        namespace: cm.metadata.namespace.clone().unwrap_or_default(),
        annotations: cm.metadata.annotations.clone().unwrap_or_default(),
        spec: parse_spec(&value)?,
        name,
    })
}

impl Template {
    pub fn description(&self) -> Option<&str> {
        self.annotations
            .get(names::DESCRIPTION_ANNOTATION)
            .map(String::as_str)
    }

    pub fn tag(&self) -> Option<&str> {
        self.annotations
            .get(names::TAG_ANNOTATION)
            .map(String::as_str)
    }
}

/// `nogoo9/required-context` split on commas, trimmed, empty entries dropped (the
/// original kept them, so a trailing comma made every spawn fail).
pub fn required_context(annotations: &BTreeMap<String, String>) -> Vec<String> {
    annotations
        .get(names::REQUIRED_CONTEXT_ANNOTATION)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `pod-template://ns/name`, `ns/name` or `name` (in `default_ns`).
pub fn parse_ref(reference: &str, default_ns: &str) -> (String, String) {
    let r = reference
        .strip_prefix("pod-template://")
        .unwrap_or(reference);
    match r.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (default_ns.to_string(), r.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(spec: &str, labelled: bool) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": "node", "namespace": "team", "labels": if labelled { json!({"nogoo9/pod-template": "true"}) } else { json!({}) },
                         "annotations": {"nogoo9/description": "Node sandbox", "nogoo9/tag": "node-20", "nogoo9/required-context": "A, B,"}},
            "data": {"spec": spec}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_template_parses_with_its_metadata() {
        let t = from_config_map(&cm(
            r#"{"labels": {"team": "x"}, "containers": [{"name": "w", "image": "node:20"}]}"#,
            true,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                t.name.as_str(),
                t.namespace.as_str(),
                t.description(),
                t.tag()
            ),
            ("node", "team", Some("Node sandbox"), Some("node-20"))
        );
        assert_eq!(required_context(&t.annotations), ["A", "B"]);
        assert_eq!(t.spec.labels.get("team").map(String::as_str), Some("x"));
        assert_eq!(t.spec.pod.containers[0].image.as_deref(), Some("node:20"));
    }

    #[test]
    fn bad_templates_name_the_problem() {
        let err = |spec: &str| {
            from_config_map(&cm(spec, true))
                .expect_err(spec)
                .to_string()
        };
        assert!(err("{").contains("not valid JSON"));
        assert_eq!(
            err(r#"{"containers": []}"#),
            "the spec is invalid: containers: at least one container is required"
        );
        assert_eq!(
            err(r#"{"containers": [{"name": "w"}]}"#),
            "the spec is invalid: containers[0].image: required"
        );
        assert!(err(r#"{"containers": [{"name": "w", "image": "x", "ports": [{"containerPort": "http"}]}]}"#).contains("containers[0].ports[0].containerPort"));
        assert_eq!(
            err(r#"{"containers": [{"name": "w", "image": "x", "imagee": "y"}]}"#),
            "the spec is invalid: containers[0].imagee: unknown field (not part of a PodSpec)"
        );
        assert!(
            err(r#"{"labels": {"a": 1}, "containers": [{"name": "w", "image": "x"}]}"#)
                .contains("labels.a")
        );
        assert!(matches!(
            from_config_map(&cm("{}", false)),
            Err(TemplateError::NotATemplate(_))
        ));
        assert!(matches!(
            from_config_map(&cm("", true)),
            Err(TemplateError::NoSpec(_))
        ));
    }

    #[test]
    fn template_references() {
        assert_eq!(
            parse_ref("pod-template://ns/name", "d"),
            ("ns".into(), "name".into())
        );
        assert_eq!(parse_ref("ns/name", "d"), ("ns".into(), "name".into()));
        assert_eq!(parse_ref("name", "d"), ("d".into(), "name".into()));
    }
}
