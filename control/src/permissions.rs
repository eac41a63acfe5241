//! The startup SelfSubjectAccessReview check that decides which tools are registered,
//! from what the catalogue (`crate::tools`) says each tool needs; and the whole set the
//! RBAC manifests must grant.

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::config::Mode;
use crate::tools::{self, Need, Tool};

/// Every `(verb, resource)` the code needs in `mode` with every tool enabled: what the
/// RBAC in `deploy/` must grant, no more, no less (all in the core API group).
pub fn required(mode: Mode) -> std::collections::BTreeSet<Need> {
    tools::TOOLS
        .iter()
        .flat_map(|t| t.needs(mode == Mode::Namespaced).iter().copied())
        .chain(tools::ALWAYS_NEEDED.iter().copied())
        .collect()
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
pub fn decide(tools: &[Tool], mode: Mode, allowed: impl Fn(Need) -> bool) -> PermissionReport {
    let mut report = PermissionReport::default();
    for tool in tools {
        let mut ok = true;
        for need in tool.needs(mode == Mode::Namespaced) {
            let yes = allowed(*need);
            report
                .permissions
                .entry(need.1.to_string())
                .or_default()
                .insert(need.0.to_string(), yes);
            ok &= yes;
        }
        if ok {
            report.enabled.push(tool.name.to_string())
        } else {
            report.disabled.push(tool.name.to_string())
        }
    }
    report
}

/// Asks the API server (SelfSubjectAccessReview) about every need of `tools`, in `namespace`.
pub async fn check(
    client: &kube::Client,
    tools: &[Tool],
    mode: Mode,
    namespace: &str,
) -> PermissionReport {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut answers: BTreeMap<Need, bool> = BTreeMap::new();
    for tool in tools {
        for need in tool.needs(mode == Mode::Namespaced) {
            if answers.contains_key(need) {
                continue;
            }
            let (group, resource, subresource) = crate::tools::split_resource(need.1);
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(namespace.to_string()),
                        verb: Some(need.0.to_string()),
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        subresource: subresource.map(str::to_string),
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
        let tools: Vec<Tool> = [
            "list_pods",
            "get_pod_logs",
            "stop_workspace",
            "list_namespaces",
            "current_namespace",
        ]
        .iter()
        .map(|n| *tools::find(n).expect("in the catalogue"))
        .collect();
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
        let list_namespaces = [*tools::find("list_namespaces").expect("in the catalogue")];
        let namespaced = decide(&list_namespaces, Mode::Namespaced, |_| false);
        assert_eq!(
            namespaced.enabled,
            ["list_namespaces"],
            "namespaced mode needs no namespace listing"
        );
    }
}
