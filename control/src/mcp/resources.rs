//! MCP resources: `pod-template://{namespace}/{name}`, the stored templates (the body is
//! the template's PodSpec JSON). Only ConfigMaps labelled as templates are readable
//! this way, so the resource cannot be used to read arbitrary ConfigMaps.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use rmcp::ErrorData as McpError;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use shared::names;

use crate::config::Mode;
use crate::context::Context;

pub const TEMPLATE_SCHEME: &str = "pod-template://";

fn template_selector() -> String {
    format!("{}=true", names::POD_TEMPLATE_LABEL)
}

/// Whether the template tools (and so these resources) are available.
fn enabled(ctx: &Context) -> bool {
    ctx.permissions.as_ref().is_none_or(|r| {
        !r.disabled
            .iter()
            .any(|t| t == "list_templates" || t == "get_template")
    })
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("pod-template://{namespace}/{name}", "pod-template")
            .with_description("Pod template ConfigMaps (label: nogoo9/pod-template=true).")
            .with_mime_type("application/json"),
    ]
}

/// Every template this server can see (its namespace in namespaced mode; all
/// namespaces it may list in cluster mode, else its own).
pub async fn list(ctx: &Context) -> Vec<Resource> {
    let mut out = Vec::new();
    if ctx.ui_enabled {
        out.push(
            Resource::new(crate::ui::RESOURCE_URI, crate::ui::RESOURCE_NAME)
                .with_description(
                    "The web UI: workspaces, templates, logs and pods, driven by this server's tools.",
                )
                .with_mime_type(crate::ui::RESOURCE_MIME),
        );
    }
    if !enabled(ctx) {
        return out;
    }
    let lp = ListParams::default().labels(&template_selector());
    let items = match ctx.mode {
        Mode::Cluster => match Api::<ConfigMap>::all(ctx.client.clone()).list(&lp).await {
            Ok(l) => Ok(l.items),
            Err(_) => Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.namespace)
                .list(&lp)
                .await
                .map(|l| l.items),
        },
        Mode::Namespaced => Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.namespace)
            .list(&lp)
            .await
            .map(|l| l.items),
    };
    let items = items.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "listing template resources failed");
        Vec::new()
    });
    out.extend(items.iter().filter_map(|cm| {
        let ns = cm.metadata.namespace.as_deref()?;
        let name = cm.metadata.name.as_deref()?;
        let mut r = Resource::new(
            format!("{TEMPLATE_SCHEME}{ns}/{name}"),
            format!("{ns}/{name}"),
        )
        .with_mime_type("application/json");
        if let Some(d) = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::DESCRIPTION_ANNOTATION))
        {
            r = r.with_description(d.clone());
        }
        Some(r)
    }));
    out
}

/// `pod-template://<namespace>/<name>` → (namespace, name).
pub fn parse_uri(uri: &str) -> Result<(&str, &str), String> {
    let rest = uri.strip_prefix(TEMPLATE_SCHEME).ok_or_else(|| {
        format!("unknown resource {uri:?}: expected pod-template://<namespace>/<name> or ui://nogoo9/app")
    })?;
    match rest.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns, name))
        }
        _ => Err(format!(
            "resource {uri:?} must be pod-template://<namespace>/<name>"
        )),
    }
}

pub async fn read(ctx: &Context, uri: &str) -> Result<ReadResourceResult, McpError> {
    let not_found = |msg: String| McpError::resource_not_found(msg, None);
    if uri == crate::ui::RESOURCE_URI {
        if !ctx.ui_enabled {
            return Err(not_found(format!(
                "{uri}: the web UI is disabled on this server (UI_ENABLED=false)"
            )));
        }
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(crate::ui::resource_page(), uri)
                .with_mime_type(crate::ui::RESOURCE_MIME),
        ]));
    }
    if !enabled(ctx) {
        return Err(not_found(
            "template resources are disabled: this server cannot read templates (see check_permissions)".into(),
        ));
    }
    let (ns, name) = parse_uri(uri).map_err(|e| McpError::invalid_params(e, None))?;
    if ctx.mode == Mode::Namespaced && ns != ctx.namespace {
        return Err(not_found(format!(
            "{uri}: this server is pinned to namespace {}",
            ctx.namespace
        )));
    }
    let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| McpError::internal_error(format!("reading {uri}: {e}"), None))?
        .filter(|cm| {
            cm.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(names::POD_TEMPLATE_LABEL))
                .is_some_and(|v| v == "true")
        })
        .ok_or_else(|| not_found(format!("no pod template {ns}/{name}")))?;
    let spec = cm
        .data
        .as_ref()
        .and_then(|d| d.get("spec"))
        .cloned()
        .unwrap_or_else(|| "{}".into());
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(spec, uri).with_mime_type("application/json"),
    ]))
}

#[cfg(test)]
mod tests {
    use super::parse_uri;

    #[test]
    fn uris_name_a_namespace_and_a_template() {
        assert_eq!(parse_uri("pod-template://team/node"), Ok(("team", "node")));
        for bad in [
            "pod-template://team",
            "pod-template:///x",
            "pod-template://a/b/c",
            "http://x/y",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }
}
