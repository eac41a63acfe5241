//! The tool catalogue: every MCP tool once, with whether it changes anything and what it
//! needs from the Kubernetes API. Registration, `--read-only`, the metrics' label set,
//! the startup permission check and the RBAC manifests (`deploy/`, checked by a test)
//! all read this one list. A leaf: it imports nothing from the crate.

/// `(verb, resource)`; a subresource is written `pods/log`, a resource of another API
/// group `leases.coordination.k8s.io` (see [`split_resource`]).
pub type Need = (&'static str, &'static str);

/// One MCP tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub name: &'static str,
    /// Changes the cluster (absent under `--read-only`).
    pub writes: bool,
    /// What the tool needs from the Kubernetes API in cluster mode. A tool that needs
    /// nothing is always registered.
    pub needs: &'static [Need],
}

impl Tool {
    /// What the tool needs in `namespaced` (`true`) or cluster mode: namespaced mode lists
    /// no namespaces (the server's own is the only one).
    pub fn needs(&self, namespaced: bool) -> &'static [Need] {
        if namespaced && self.name == "list_namespaces" {
            &[]
        } else {
            self.needs
        }
    }
}

const fn read(name: &'static str, needs: &'static [Need]) -> Tool {
    Tool {
        name,
        writes: false,
        needs,
    }
}

const fn write(name: &'static str, needs: &'static [Need]) -> Tool {
    Tool {
        name,
        writes: true,
        needs,
    }
}

/// Every tool, in the order `tools/list` shows them.
pub const TOOLS: &[Tool] = &[
    read("current_namespace", &[]),
    read("check_permissions", &[]),
    read("list_pods", &[("list", "pods")]),
    read("get_pod", &[("get", "pods")]),
    write("create_pod", &[("create", "pods")]),
    write("patch_pod", &[("get", "pods"), ("patch", "pods")]),
    write(
        "create_pod_from_template",
        &[("get", "configmaps"), ("create", "pods")],
    ),
    write("delete_pod", &[("get", "pods"), ("delete", "pods")]),
    read("get_pod_logs", &[("get", "pods"), ("get", "pods/log")]),
    read("list_namespaces", &[("list", "namespaces")]),
    read("list_registry_images", &[]),
    read("list_templates", &[("list", "configmaps")]),
    read("get_template", &[("get", "configmaps")]),
    write("create_template", &[("create", "configmaps")]),
    write(
        "update_template",
        &[("get", "configmaps"), ("update", "configmaps")],
    ),
    write(
        "delete_template",
        &[("get", "configmaps"), ("delete", "configmaps")],
    ),
    // A spawn claims the id (a ConfigMap), reads the template, and makes the pod.
    write(
        "spawn_workspace",
        &[
            ("get", "pods"),
            ("list", "pods"),
            ("create", "pods"),
            ("get", "configmaps"),
            ("create", "configmaps"),
            ("delete", "configmaps"),
            ("create", "serviceaccounts"),
            ("get", "serviceaccounts"),
            ("delete", "serviceaccounts"),
            // Its files (`nogoo9/volume-size`), and resuming a suspended one.
            ("create", "persistentvolumeclaims"),
            ("get", "persistentvolumeclaims"),
            ("delete", "persistentvolumeclaims"),
            ("get", "secrets"),
            ("delete", "secrets"),
            ("update", "configmaps"),
        ],
    ),
    write(
        "stop_workspace",
        &[
            ("list", "pods"),
            ("delete", "pods"),
            ("get", "configmaps"),
            ("delete", "configmaps"),
            ("get", "serviceaccounts"),
            ("delete", "serviceaccounts"),
            // What a suspension kept: its record and its files.
            ("delete", "secrets"),
            ("get", "persistentvolumeclaims"),
            ("delete", "persistentvolumeclaims"),
        ],
    ),
    write(
        "resume_workspace",
        &[
            ("get", "configmaps"),
            ("update", "configmaps"),
            ("get", "secrets"),
            ("create", "pods"),
            ("get", "pods"),
        ],
    ),
    write(
        "keepalive_workspace",
        &[("list", "pods"), ("patch", "pods")],
    ),
    read(
        "list_workspaces",
        &[("list", "pods"), ("list", "configmaps")],
    ),
];

/// What the control plane needs whatever tools are enabled: the route watch over pods
/// and id claims, releasing the claims of gone pods, recording gateway-reported activity
/// on pods (`nogoo9/last-activity`), the culler (its Lease, stopping what is due: the
/// same as `stop_workspace`; suspending it), waking on request, and the workspace events.
pub const ALWAYS_NEEDED: &[Need] = &[
    ("list", "pods"),
    ("watch", "pods"),
    ("patch", "pods"),
    ("delete", "pods"),
    ("list", "configmaps"),
    ("watch", "configmaps"),
    ("get", "configmaps"),
    ("delete", "configmaps"),
    ("get", "serviceaccounts"),
    ("delete", "serviceaccounts"),
    ("create", "events"),
    ("get", "leases.coordination.k8s.io"),
    ("create", "leases.coordination.k8s.io"),
    ("update", "leases.coordination.k8s.io"),
    // Suspending an idle workspace (its record) and waking it on its owner's request.
    ("get", "secrets"),
    ("create", "secrets"),
    ("update", "secrets"),
    ("update", "configmaps"),
    ("get", "pods"),
    ("create", "pods"),
    // Warm pools: refilled by the Lease holder, claimed by a spawn with an update.
    ("update", "pods"),
];

/// A need's resource as `(group, resource, subresource)`: `pods/log` is core `pods` with
/// subresource `log`; `leases.coordination.k8s.io` is `leases` in that group.
pub fn split_resource(
    resource: &'static str,
) -> (&'static str, &'static str, Option<&'static str>) {
    let (name, sub) = match resource.split_once('/') {
        Some((n, s)) => (n, Some(s)),
        None => (resource, None),
    };
    match name.split_once('.') {
        Some((r, group)) => (group, r, sub),
        None => ("", name, sub),
    }
}

/// The tool named `name`.
pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Every tool's name, in catalogue order.
pub fn names() -> impl Iterator<Item = &'static str> {
    TOOLS.iter().map(|t| t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_reads_need_no_write_verbs() {
        let mut seen = std::collections::BTreeSet::new();
        for t in TOOLS {
            assert!(seen.insert(t.name), "{} listed twice", t.name);
            if !t.writes {
                assert!(
                    t.needs
                        .iter()
                        .all(|(verb, _)| ["get", "list"].contains(verb)),
                    "{} is a read tool but needs {:?}",
                    t.name,
                    t.needs
                );
            }
        }
        assert_eq!(
            find("list_namespaces").map(|t| t.needs(true)),
            Some(&[][..])
        );
        assert!(find("no_such_tool").is_none());
    }
}
