//! `create_template`, `update_template`, `delete_template`. A template's spec is checked
//! (the bad field named) and against the Pod Security Standard before it is stored, and
//! update/delete touch only ConfigMaps labelled as templates (the original would delete
//! any ConfigMap by name).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use serde_json::{Value, json};
use shared::names;

use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::{pod_security, templates};

/// What `create_template`/`update_template` set (on update, absent fields are kept).
#[derive(Debug, Default, Clone)]
pub struct TemplateFields {
    /// `nogoo9/description`; an empty string removes it.
    pub description: Option<String>,
    /// `nogoo9/tag`; an empty string removes it.
    pub tag: Option<String>,
    /// Extra ConfigMap labels (the template label is always kept).
    pub labels: BTreeMap<String, String>,
    /// Spawner annotations.
    pub annotations: BTreeMap<String, String>,
    /// The PodSpec (with optional labels/annotations for the pod).
    pub spec: Option<Value>,
}

fn checked_spec(ctx: &Context, spec: &Value) -> Result<String, ToolError> {
    let parsed = templates::parse_spec(spec).map_err(|e| ToolError::bad_input(e.to_string()))?;
    let violations = pod_security::check(&parsed.pod, &parsed.annotations, ctx.pod_security);
    if !violations.is_empty() {
        return Err(ToolError::bad_input(format!(
            "the template's spec {}",
            pod_security::describe(ctx.pod_security, &violations)
        )));
    }
    Ok(spec.to_string())
}

fn apply_metadata(meta: &mut ObjectMeta, fields: &TemplateFields) {
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(fields.labels.clone());
    labels.insert(names::POD_TEMPLATE_LABEL.into(), "true".into());
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.extend(fields.annotations.clone());
    for (key, value) in [
        (names::DESCRIPTION_ANNOTATION, &fields.description),
        (names::TAG_ANNOTATION, &fields.tag),
    ] {
        match value.as_deref() {
            Some("") => {
                annotations.remove(key);
            }
            Some(v) => {
                annotations.insert(key.into(), v.into());
            }
            None => {}
        }
    }
}

/// Annotations whose mistakes would otherwise show only later: a warm pool the template
/// cannot have (`pool.rs` says why) or an unknown context delivery.
fn check_annotations(cm: &ConfigMap) -> Result<(), ToolError> {
    let annotations = cm.metadata.annotations.clone().unwrap_or_default();
    crate::pool::delivery(&annotations).map_err(ToolError::bad_input)?;
    crate::pool::size(&annotations).map_err(ToolError::bad_input)?;
    Ok(())
}

pub async fn create(
    ctx: &Context,
    namespace: Option<&str>,
    name: &str,
    fields: TemplateFields,
) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(namespace)?;
    crate::valid::object(name, "template")?;
    let spec = fields
        .spec
        .as_ref()
        .ok_or_else(|| ToolError::bad_input("spec is required to create a template"))?;
    let data = checked_spec(ctx, spec)?;
    let mut cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("spec".to_string(), data)])),
        ..Default::default()
    };
    apply_metadata(&mut cm.metadata, &fields);
    check_annotations(&cm)?;
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await?;
    Ok(Outcome {
        text: format!("Created template {name}"),
        structured: json!({"name": name, "namespace": ns}),
    })
}

/// The ConfigMap, if it is a template; a clear refusal otherwise.
async fn existing_template(api: &Api<ConfigMap>, name: &str) -> Result<ConfigMap, ToolError> {
    let cm = api.get(name).await?;
    if !templates::is_template(&cm) {
        return Err(ToolError {
            code: 403,
            message: format!(
                "ConfigMap {name} is not a pod template (no nogoo9/pod-template=true label); it is left alone"
            ),
        });
    }
    Ok(cm)
}

pub async fn update(
    ctx: &Context,
    namespace: Option<&str>,
    name: &str,
    fields: TemplateFields,
) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(namespace)?;
    crate::valid::object(name, "template")?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let mut cm = existing_template(&api, name).await?;
    if let Some(spec) = &fields.spec {
        cm.data
            .get_or_insert_with(BTreeMap::new)
            .insert("spec".into(), checked_spec(ctx, spec)?);
    }
    apply_metadata(&mut cm.metadata, &fields);
    check_annotations(&cm)?;
    // The fetched resourceVersion travels with the object: a concurrent edit is a 409.
    api.replace(name, &PostParams::default(), &cm).await?;
    Ok(Outcome {
        text: format!("Updated template {name}"),
        structured: json!({"name": name, "namespace": ns}),
    })
}

pub async fn delete(
    ctx: &Context,
    name: &str,
    namespace: Option<&str>,
) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(namespace)?;
    crate::valid::object(name, "template")?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let cm = existing_template(&api, name).await?;
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cm.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    api.delete(name, &dp).await?;
    Ok(Outcome {
        text: format!("Deleted template {name}"),
        structured: json!({"name": name, "namespace": ns}),
    })
}
