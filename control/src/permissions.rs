//! Which Kubernetes verbs each tool needs — the one table the code, the startup check and
//! (with the deploy issue) the RBAC manifests derive from — and the SelfSubjectAccessReview
//! check that decides which tools are registered.

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::config::Mode;

/// `(verb, resource)`; a subresource is written `pods/log`.
pub type Need = (&'static str, &'static str);

/// Tool → what it needs from the Kubernetes API. Tools absent here need nothing.
pub const TOOL_NEEDS: &[(&str, &[Need])] = &[
    ("list_pods", &[("list", "pods")]),
    ("get_pod", &[("get", "pods")]),
    ("create_pod", &[("create", "pods")]),
    ("patch_pod", &[("patch", "pods")]),
    (
        "create_pod_from_template",
        &[("get", "configmaps"), ("create", "pods")],
    ),
    ("delete_pod", &[("delete", "pods")]),
    ("get_pod_logs", &[("get", "pods"), ("get", "pods/log")]),
    ("list_namespaces", &[("list", "namespaces")]),
    ("list_templates", &[("list", "configmaps")]),
    ("get_template", &[("get", "configmaps")]),
    ("create_template", &[("create", "configmaps")]),
    (
        "update_template",
        &[("get", "configmaps"), ("update", "configmaps")],
    ),
    (
        "delete_template",
        &[("get", "configmaps"), ("delete", "configmaps")],
    ),
    (
        "spawn_workspace",
        &[
            ("list", "pods"),
            ("create", "pods"),
            ("get", "configmaps"),
            ("create", "serviceaccounts"),
            ("get", "serviceaccounts"),
            ("delete", "serviceaccounts"),
        ],
    ),
    (
        "stop_workspace",
        &[
            ("list", "pods"),
            ("delete", "pods"),
            ("get", "serviceaccounts"),
            ("delete", "serviceaccounts"),
        ],
    ),
    ("list_workspaces", &[("list", "pods")]),
];

/// What the control plane itself needs whatever tools are enabled: the route watch, and
/// recording gateway-reported activity on pods (`nogoo9/last-activity`).
pub const ALWAYS_NEEDED: &[Need] = &[("list", "pods"), ("watch", "pods"), ("patch", "pods")];

/// Every `(verb, resource)` the code needs in `mode` with every tool enabled: what the
/// RBAC in `deploy/` must grant, no more, no less (all in the core API group).
pub fn required(mode: Mode) -> std::collections::BTreeSet<Need> {
    crate::mcp::ALL_TOOLS
        .iter()
        .flat_map(|t| needs(t, mode).iter().copied())
        .chain(ALWAYS_NEEDED.iter().copied())
        .collect()
}

/// The needs of a tool in a mode (`list_namespaces` needs nothing in namespaced mode).
pub fn needs(tool: &str, mode: Mode) -> &'static [Need] {
    if mode == Mode::Namespaced && tool == "list_namespaces" {
        return &[];
    }
    TOOL_NEEDS
        .iter()
        .find(|(t, _)| *t == tool)
        .map_or(&[], |(_, n)| n)
}

/// The outcome of the startup check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionReport {
    /// `resource → verb → allowed`.
    pub permissions: BTreeMap<String, BTreeMap<String, bool>>,
    pub enabled: Vec<String>,
    pub disabled: Vec<String>,
}

impl PermissionReport {
    pub fn allowed(&self, (verb, resource): Need) -> bool {
        self.permissions
            .get(resource)
            .and_then(|v| v.get(verb))
            .copied()
            .unwrap_or(false)
    }

    /// The `check_permissions` structured result (the original's shape).
    pub fn to_json(&self, mode: Mode, namespace: &str) -> Value {
        json!({
            "mode": mode.as_str(), "namespace": namespace,
            "enabledTools": self.enabled, "disabledTools": self.disabled, "permissions": self.permissions,
        })
    }

    /// The `check_permissions` text (the original's table layout).
    pub fn to_text(&self) -> String {
        let mut out = String::from("--- RBAC PERMISSIONS ---\nRESOURCE\tVERB\tALLOWED");
        for (resource, verbs) in &self.permissions {
            for (verb, ok) in verbs {
                out.push_str(&format!(
                    "\n{resource}\t{verb}\t{}",
                    if *ok { "✔ YES" } else { "❌ NO" }
                ));
            }
        }
        out.push_str("\n\n--- MCP TOOLS ---\nTOOL\tSTATUS");
        for t in &self.enabled {
            out.push_str(&format!("\n{t}\tENABLED"));
        }
        for t in &self.disabled {
            out.push_str(&format!("\n{t}\tDISABLED"));
        }
        out
    }
}

/// Decides tool by tool from a `(verb, resource) → allowed` answer.
pub fn decide(tools: &[&str], mode: Mode, allowed: impl Fn(Need) -> bool) -> PermissionReport {
    let mut report = PermissionReport::default();
    for tool in tools {
        let mut ok = true;
        for need in needs(tool, mode) {
            let yes = allowed(*need);
            report
                .permissions
                .entry(need.1.to_string())
                .or_default()
                .insert(need.0.to_string(), yes);
            ok &= yes;
        }
        if ok {
            report.enabled.push(tool.to_string())
        } else {
            report.disabled.push(tool.to_string())
        }
    }
    report
}

/// Asks the API server (SelfSubjectAccessReview) about every need of `tools`, in `namespace`.
pub async fn check(
    client: &kube::Client,
    tools: &[&str],
    mode: Mode,
    namespace: &str,
) -> PermissionReport {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut answers: BTreeMap<Need, bool> = BTreeMap::new();
    for tool in tools {
        for need in needs(tool, mode) {
            if answers.contains_key(need) {
                continue;
            }
            let (resource, subresource) = match need.1.split_once('/') {
                Some((r, s)) => (r, Some(s.to_string())),
                None => (need.1, None),
            };
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(namespace.to_string()),
                        verb: Some(need.0.to_string()),
                        resource: Some(resource.to_string()),
                        subresource,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let allowed = match reviews.create(&PostParams::default(), &review).await {
                Ok(r) => r.status.is_some_and(|s| s.allowed),
                Err(e) => {
                    tracing::warn!(verb = need.0, resource = need.1, error = %e, "permission check failed; treating as denied");
                    false
                }
            };
            answers.insert(*need, allowed);
        }
    }
    decide(tools, mode, |n| answers.get(&n).copied().unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_is_enabled_only_with_every_verb_it_needs() {
        let tools = [
            "list_pods",
            "get_pod_logs",
            "stop_workspace",
            "list_namespaces",
            "current_namespace",
        ];
        let report = decide(&tools, Mode::Cluster, |(verb, resource)| {
            !(verb == "get" && resource == "pods/log")
        });
        assert_eq!(report.disabled, ["get_pod_logs"]);
        assert_eq!(
            report.enabled,
            [
                "list_pods",
                "stop_workspace",
                "list_namespaces",
                "current_namespace"
            ]
        );
        assert!(!report.allowed(("get", "pods/log")));
        assert!(report.to_text().contains("pods/log\tget\t❌ NO"));
        let namespaced = decide(&["list_namespaces"], Mode::Namespaced, |_| false);
        assert_eq!(
            namespaced.enabled,
            ["list_namespaces"],
            "namespaced mode needs no namespace listing"
        );
    }
}
