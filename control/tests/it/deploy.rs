//! The manifests in `deploy/`: each overlay rendered by `kubectl kustomize` parses into
//! the Kubernetes types with no unknown field; the RBAC it grants equals what the code
//! needs in that mode (`permissions::required`), no verb missing and none extra; the pod
//! runs both processes hardened and sharing the route socket; the Dockerfile builds both
//! binaries into a non-root image.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use control::config::Mode;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;

/// Where workspaces live in `deploy/`: not control's own namespace (`nogoo9`).
const WORKSPACES: &str = "nogoo9-workspaces";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// YAML documents → JSON values (PyYAML, pinned with the conformance client).
fn yaml_docs(yaml: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args(["-c", "import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        stdin
            .write_all(yaml.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "YAML did not parse");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

fn render(overlay: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy_dir().join("overlays").join(overlay))
        .output()
        .unwrap_or_else(|e| panic!("kubectl: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8_lossy(&out.stdout))
}

/// Decodes into `T`, failing on any field the type does not know.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let (t, _, unknown) = shared::typed::decode::<T>(doc)
        .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    assert!(
        unknown.is_empty(),
        "{} {}: unknown fields {unknown:?}",
        doc["kind"],
        doc["metadata"]["name"]
    );
    t
}

fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        let groups = r.api_groups.clone().unwrap_or_default();
        assert_eq!(groups.len(), 1, "one API group per rule: {r:?}");
        // Resources of other groups are named `resource.group`, as the tool catalogue does.
        let suffix = if groups[0].is_empty() {
            String::new()
        } else {
            format!(".{}", groups[0])
        };
        assert!(r.resource_names.is_none(), "{r:?}");
        for res in r.resources.iter().flatten() {
            for verb in &r.verbs {
                out.insert((verb.clone(), format!("{res}{suffix}")));
            }
        }
    }
    out
}

fn check_overlay(overlay: &str, mode: Mode) {
    let docs = render(overlay);
    let mut rules = None;
    let mut deployment = None;
    let mut kinds = BTreeSet::new();
    let mut namespaces = Vec::new();
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        kinds.insert(kind.clone());
        match kind.as_str() {
            "Namespace" => {
                namespaces.push(typed::<Namespace>(doc).metadata.name.unwrap_or_default())
            }
            "ServiceAccount" => drop(typed::<ServiceAccount>(doc)),
            "Service" => drop(typed::<Service>(doc)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(doc)),
            "ConfigMap" => {
                let cm: ConfigMap = typed(doc);
                assert_eq!(cm.metadata.namespace.as_deref(), Some(WORKSPACES));
                control::templates::from_config_map(&cm)
                    .unwrap_or_else(|e| panic!("the example template is valid: {e}"));
            }
            "Deployment" => deployment = Some(typed::<Deployment>(doc)),
            "ClusterRole" => rules = Some(typed::<ClusterRole>(doc).rules.unwrap_or_default()),
            "Role" => rules = Some(typed::<Role>(doc).rules.unwrap_or_default()),
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = typed(doc);
                assert_eq!(
                    (b.role_ref.kind.as_str(), b.role_ref.name.as_str()),
                    ("ClusterRole", "nocrd9")
                );
                let s = &b.subjects.unwrap_or_default()[0];
                assert_eq!(
                    (s.name.as_str(), s.namespace.as_deref()),
                    ("nocrd9", Some("nogoo9"))
                );
            }
            "RoleBinding" => {
                let b: RoleBinding = typed(doc);
                assert_eq!(
                    (b.role_ref.kind.as_str(), b.role_ref.name.as_str()),
                    ("Role", "nocrd9")
                );
                assert_eq!(
                    b.metadata.namespace.as_deref(),
                    Some(WORKSPACES),
                    "the Role is where control works"
                );
                let s = &b.subjects.unwrap_or_default()[0];
                assert_eq!(
                    (s.name.as_str(), s.namespace.as_deref()),
                    ("nocrd9", Some("nogoo9"))
                );
            }
            other => panic!("{overlay}: unexpected kind {other}"),
        }
    }
    let expected_kinds: BTreeSet<String> = match mode {
        Mode::Cluster => ["ClusterRole", "ClusterRoleBinding"],
        Mode::Namespaced => ["Role", "RoleBinding"],
    }
    .iter()
    .chain(&[
        "Namespace",
        "ServiceAccount",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
        "Deployment",
    ])
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kinds, expected_kinds, "{overlay}");

    // RBAC equality with the code's table.
    let granted = granted(&rules.unwrap_or_else(|| panic!("{overlay}: no role")));
    let needed: BTreeSet<(String, String)> = control::permissions::required(mode)
        .into_iter()
        .map(|(v, r)| (v.to_string(), r.to_string()))
        .collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{overlay}: missing {missing:?}, extra {extra:?}"
    );

    // The pod: both processes, hardened, sharing the socket, probed.
    let d = deployment.unwrap_or_else(|| panic!("{overlay}: no Deployment"));
    let pod = d
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_else(|| panic!("pod spec"));
    let psc = pod.security_context.clone().unwrap_or_default();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.map(|s| s.type_),
        Some("RuntimeDefault".into())
    );
    let socket_volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.empty_dir.is_some() && v.name == "route-socket")
        .unwrap_or_else(|| panic!("an emptyDir for the socket"));
    let env = |c: &k8s_openapi::api::core::v1::Container, name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    let commands: Vec<String> = pod
        .containers
        .iter()
        .filter_map(|c| c.command.clone()?.first().cloned())
        .collect();
    assert_eq!(commands, ["nocrd9", "nocrd9-gateway"]);
    for c in &pod.containers {
        let sc = c.security_context.clone().unwrap_or_default();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(
            sc.capabilities.and_then(|k| k.drop),
            Some(vec!["ALL".to_string()]),
            "{}",
            c.name
        );
        let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        assert_eq!(
            probe_path(&c.liveness_probe).as_deref(),
            Some("/healthz"),
            "{}",
            c.name
        );
        assert_eq!(
            probe_path(&c.readiness_probe).as_deref(),
            Some("/readyz"),
            "{}",
            c.name
        );
        let r = c.resources.clone().unwrap_or_default();
        assert!(
            r.requests.is_some() && r.limits.is_some(),
            "{}: requests and limits",
            c.name
        );
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == socket_volume.name && m.mount_path == "/run/nocrd9"),
            "{} mounts the socket directory",
            c.name
        );
    }
    let control_c = &pod.containers[0];
    let gateway_c = &pod.containers[1];
    assert_eq!(
        env(control_c, "GATEWAY_SOCKET"),
        env(gateway_c, "CONTROL_SOCKET")
    );
    assert_eq!(env(control_c, "MODE").as_deref(), Some(mode.as_str()));
    // Workspaces (and what control works with) are kept out of control's own namespace.
    assert_eq!(d.metadata.namespace.as_deref(), Some("nogoo9"));
    assert_eq!(env(control_c, "NAMESPACE").as_deref(), Some(WORKSPACES));
    assert_eq!(
        env(control_c, "WORKSPACE_NAMESPACE").as_deref(),
        Some(WORKSPACES)
    );
    assert!(
        control_c
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "ADMIN_SUBJECTS"),
        "ADMIN_SUBJECTS is there to fill in"
    );
    assert!(
        namespaces.contains(&"nogoo9".to_string()) && namespaces.contains(&WORKSPACES.to_string()),
        "{namespaces:?}"
    );
}

#[test]
fn cluster_overlay_parses_and_grants_exactly_what_the_code_needs() {
    check_overlay("cluster", Mode::Cluster);
}

#[test]
fn namespaced_overlay_parses_and_grants_exactly_what_the_code_needs() {
    check_overlay("namespaced", Mode::Namespaced);
}

#[test]
fn the_networkpolicy_component_parses() {
    let yaml =
        std::fs::read_to_string(deploy_dir().join("components/networkpolicy/networkpolicy.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
    for doc in yaml_docs(&yaml) {
        let np: NetworkPolicy = typed(&doc);
        let spec = np.spec.unwrap_or_default();
        let selector = spec
            .pod_selector
            .unwrap_or_default()
            .match_labels
            .unwrap_or_default();
        assert_eq!(
            selector.get("nogoo9/type").map(String::as_str),
            Some("workspace")
        );
        assert_eq!(np.metadata.namespace.as_deref(), Some(WORKSPACES));
    }
}

#[test]
fn the_host_routing_component_sets_the_domain_and_a_wildcard_ingress() {
    use k8s_openapi::api::networking::v1::Ingress;
    // An overlay of the cluster overlay with the component, as an operator would write it.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let deploy = deploy_dir()
        .canonicalize()
        .unwrap_or_else(|e| panic!("{e}"));
    let site = dir.path().join("site");
    // Kustomize takes only relative paths: up to `/`, then down to `deploy/`.
    let up = "../".repeat(site.components().count() - 1);
    let abs = |p: &str| {
        format!(
            "{up}{}",
            deploy.join(p).display().to_string().trim_start_matches('/')
        )
    };
    std::fs::create_dir(&site).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("site/kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            abs("overlays/cluster"),
            abs("components/host-routing")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&site)
        .output()
        .unwrap_or_else(|e| panic!("kubectl: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = yaml_docs(&String::from_utf8_lossy(&out.stdout));
    let deployment: Deployment = typed(
        docs.iter()
            .find(|d| d["kind"] == "Deployment")
            .unwrap_or_else(|| panic!("a Deployment")),
    );
    let containers = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers)
        .unwrap_or_default();
    let env = |name: &str, key: &str| {
        containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.env.as_ref())
            .and_then(|e| e.iter().find(|v| v.name == key))
            .and_then(|v| v.value.clone())
    };
    assert_eq!(
        env("control", "WORKSPACE_DOMAIN").as_deref(),
        Some("workspaces.example.com")
    );
    assert_eq!(
        env("gateway", "WORKSPACE_DOMAIN").as_deref(),
        Some("workspaces.example.com")
    );
    assert_eq!(
        env("control", "GATEWAY_URL").as_deref(),
        Some("https://workspaces.example.com")
    );
    let ingress: Ingress = typed(
        docs.iter()
            .find(|d| d["kind"] == "Ingress")
            .unwrap_or_else(|| panic!("an Ingress")),
    );
    assert_eq!(
        ingress.metadata.namespace.as_deref(),
        Some("nogoo9"),
        "beside the gateway's Service"
    );
    let spec = ingress.spec.unwrap_or_default();
    let hosts: Vec<String> = spec
        .rules
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.host)
        .collect();
    assert!(
        hosts.contains(&"*.workspaces.example.com".to_string()),
        "{hosts:?}"
    );
    let tls = spec.tls.unwrap_or_default();
    assert!(tls.iter().any(|t| {
        t.hosts
            .iter()
            .flatten()
            .any(|h| h == "*.workspaces.example.com")
    }));
}

#[test]
fn the_dockerfile_builds_both_binaries_into_a_non_root_image() {
    let text =
        std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap_or_else(|e| panic!("{e}"));
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage");
    assert!(
        text.contains("cargo build --release -p control --no-default-features --bin nocrd9"),
        "the cluster image's nocrd9 leaves the simulator (feature `dev`) out"
    );
    assert!(text.contains("cargo build --release -p gateway --bin nocrd9-gateway"));
    assert!(!text.contains("cmake"), "nothing but the Rust toolchain");
    for bin in ["nocrd9", "nocrd9-gateway"] {
        assert!(
            text.contains(&format!(
                "COPY --from=build /out/{bin} /usr/local/bin/{bin}"
            )),
            "{bin} is in the image"
        );
    }
    let last_from = text
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap_or_default();
    assert!(last_from.contains(":nonroot"), "{last_from}");
    assert!(text.lines().any(|l| l.trim() == "USER 65532:65532"));
    // The binaries the Dockerfile copies are the workspace's binaries.
    for (manifest, bin) in [
        ("control/Cargo.toml", "nocrd9"),
        ("gateway/Cargo.toml", "nocrd9-gateway"),
    ] {
        let m = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(manifest),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            m.contains(&format!("name = \"{bin}\"")),
            "{manifest} builds {bin}"
        );
    }
}
