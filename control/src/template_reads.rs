//! Template reads for every tool (`list_templates`, `get_template`, spawns,
//! `create_pod_from_template`, the `pod-template://` resources), all through the policy:
//! a user reads only the template namespace, and only ConfigMaps labelled as templates
//! are ever read (anything else answers like a missing template).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};
use shared::names;

use crate::caller::Caller;
use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::policy;
use crate::templates::{self, Template};

/// Every template ConfigMap `who` may read: a user's from the template namespace; an
/// administrator's from every namespace the server may list (cluster mode), else its own.
pub async fn visible(ctx: &Context, who: &Caller) -> Vec<ConfigMap> {
    let lp = ListParams::default().labels(&format!("{}=true", names::POD_TEMPLATE_LABEL));
    let own = || Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.namespace);
    let items = match (ctx.mode, who.role()) {
        (crate::config::Mode::Cluster, crate::caller::Role::Admin) => {
            match Api::<ConfigMap>::all(ctx.client.clone()).list(&lp).await {
                Ok(l) => Ok(l.items),
                Err(_) => own().list(&lp).await.map(|l| l.items),
            }
        }
        _ => own().list(&lp).await.map(|l| l.items),
    };
    items.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "listing templates failed");
        Vec::new()
    })
}

/// The template `reference` names, if `who` may read it: its ConfigMap and its parse.
pub async fn fetch(
    ctx: &Context,
    who: &Caller,
    reference: &str,
) -> Result<(ConfigMap, Template), ToolError> {
    let (ns, name) = policy::template_ref(ctx, who, reference)?;
    let missing = || ToolError::not_found(format!("template {name} not found in namespace {ns}"));
    let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await?
        .filter(templates::is_template)
        .ok_or_else(missing)?;
    let t = templates::from_config_map(&cm).map_err(|e| ToolError::bad_input(e.to_string()))?;
    Ok((cm, t))
}

pub async fn list_templates(
    ctx: &Context,
    who: &Caller,
    namespace: Option<&str>,
) -> Result<Outcome, ToolError> {
    let ns = policy::template_namespace(ctx, who, namespace)?;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let list = cms
        .list(&ListParams::default().labels(&format!("{}=true", names::POD_TEMPLATE_LABEL)))
        .await?;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for cm in &list.items {
        match templates::from_config_map(cm) {
            Ok(t) => rows.push(json!({
                "name": t.name, "namespace": t.namespace, "description": t.description().unwrap_or_default(),
                "tag": t.tag().unwrap_or_default(), "requiredContext": templates::required_context(&t.annotations),
                "lifecycle": lifecycle_of(&t.annotations),
            })),
            Err(e) => {
                tracing::warn!(template = ?cm.metadata.name, error = %e, "skipping an invalid template");
                skipped.push(json!({"name": cm.metadata.name, "error": e.to_string()}));
            }
        }
    }
    let mut text = if rows.is_empty() {
        "(no templates)".to_string()
    } else {
        String::new()
    };
    for r in &rows {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "{}\t{}",
            r["name"].as_str().unwrap_or_default(),
            r["description"].as_str().unwrap_or_default()
        ));
    }
    for s in &skipped {
        text.push_str(&format!(
            "\n(skipped invalid template {}: {})",
            s["name"].as_str().unwrap_or_default(),
            s["error"].as_str().unwrap_or_default()
        ));
    }
    Ok(Outcome {
        text,
        structured: json!({"templates": rows, "skipped": skipped}),
    })
}

pub async fn get_template(
    ctx: &Context,
    who: &Caller,
    name: &str,
    namespace: Option<&str>,
) -> Result<Outcome, ToolError> {
    let ns = policy::template_namespace(ctx, who, namespace)?;
    let (cm, t) = fetch(ctx, who, &format!("{ns}/{name}")).await?;
    let spec: Value = cm
        .data
        .as_ref()
        .and_then(|d| d.get("spec"))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    Ok(Outcome {
        text: serde_json::to_string_pretty(&spec).unwrap_or_default(),
        structured: json!({
            "name": t.name, "namespace": t.namespace, "description": t.description().unwrap_or_default(),
            "tag": t.tag().unwrap_or_default(), "spec": spec, "requiredContext": templates::required_context(&t.annotations),
        }),
    })
}

/// What a template says about its workspaces' lifecycle, as written (for people: the UI's
/// Templates view; `null` for what it does not set).
fn lifecycle_of(annotations: &std::collections::BTreeMap<String, String>) -> serde_json::Value {
    let get = |k: &str| annotations.get(k).cloned();
    json!({
        "idleTimeout": get(names::IDLE_TIMEOUT_ANNOTATION),
        "idleAction": get(names::IDLE_ACTION_ANNOTATION),
        "maxLifetime": get(names::MAX_LIFETIME_ANNOTATION),
        "wakeOnRequest": get(names::WAKE_ON_REQUEST_ANNOTATION).is_some_and(|v| v == "true"),
        "warmPoolSize": crate::pool::size(annotations).unwrap_or(0),
    })
}
