//! MCP resources: `pod-template://{namespace}/{name}`, the stored templates (the body is
//! the template's PodSpec JSON), read through `template_reads` (the policy's template
//! rules; only ConfigMaps labelled as templates), and the UI as `ui://nogoo9/app`.

use rmcp::ErrorData as McpError;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use shared::names;

use crate::caller::Caller;
use crate::context::Context;
use crate::template_reads;

pub const TEMPLATE_SCHEME: &str = "pod-template://";

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

/// The UI, and every template `who` may read.
pub async fn list(ctx: &Context, who: &Caller) -> Vec<Resource> {
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
    let items = template_reads::visible(ctx, who).await;
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

pub async fn read(ctx: &Context, who: &Caller, uri: &str) -> Result<ReadResourceResult, McpError> {
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
    let (cm, _) = template_reads::fetch(ctx, who, &format!("{ns}/{name}"))
        .await
        .map_err(|e| match e.code {
            404 => not_found(e.message),
            403 | 400 => McpError::invalid_params(e.message, None),
            _ => McpError::internal_error(format!("reading {uri}: {}", e.message), None),
        })?;
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
