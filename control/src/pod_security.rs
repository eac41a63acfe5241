//! Kubernetes Pod Security Standards (`baseline` and `restricted`) for pod specs that
//! arrive through a tool. Pure: every violation names the field, as the admission
//! controller does. <https://kubernetes.io/docs/concepts/security/pod-security-standards/>

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};

/// The annotations that set a container's AppArmor profile (before the field existed).
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// AppArmor profiles `baseline` allows (unset is allowed too).
fn apparmor_ok(value: &str) -> bool {
    value == "runtime/default" || value.starts_with("localhost/")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Capabilities `baseline` allows containers to add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls `baseline` allows.
const SAFE_SYSCTLS: [&str; 9] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
];

/// Volume types `restricted` allows.
fn restricted_volume_ok(v: &k8s_openapi::api::core::v1::Volume) -> bool {
    v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some()
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = (String, &Container)> {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let main = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c));
    init.chain(main)
}

/// Every violation of `level` in a pod's `spec` and `annotations` (none for `privileged`).
pub fn check(
    spec: &PodSpec,
    annotations: &BTreeMap<String, String>,
    level: Level,
) -> Vec<Violation> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let mut v = |field: String, message: &str| {
        out.push(Violation {
            field,
            message: message.to_string(),
        })
    };
    for (flag, name) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if flag == Some(true) {
            v(format!("spec.{name}"), "host namespaces are forbidden");
        }
    }
    for (i, vol) in spec.volumes.iter().flatten().enumerate() {
        if vol.host_path.is_some() {
            v(
                format!("spec.volumes[{i}].hostPath"),
                "hostPath volumes are forbidden",
            );
        } else if level == Level::Restricted && !restricted_volume_ok(vol) {
            v(
                format!("spec.volumes[{i}]"),
                "restricted allows only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected and secret volumes",
            );
        }
    }
    for (key, value) in annotations {
        if key.starts_with(APPARMOR_ANNOTATION_PREFIX) && !apparmor_ok(value) {
            v(
                format!("metadata.annotations[{key}]"),
                "only the runtime/default and localhost/* AppArmor profiles are allowed",
            );
        }
    }
    let pod_sc = spec.security_context.as_ref();
    if pod_sc
        .and_then(|s| s.app_armor_profile.as_ref())
        .is_some_and(|p| p.type_ == "Unconfined")
    {
        v(
            "spec.securityContext.appArmorProfile.type".into(),
            "Unconfined AppArmor profiles are forbidden",
        );
    }
    if pod_sc
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        v(
            "spec.securityContext.windowsOptions.hostProcess".into(),
            "Windows host processes are forbidden",
        );
    }
    if let Some(sysctls) = pod_sc.and_then(|s| s.sysctls.as_ref()) {
        for (i, s) in sysctls.iter().enumerate() {
            if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
                v(
                    format!("spec.securityContext.sysctls[{i}].name"),
                    "only the safe sysctls are allowed",
                );
            }
        }
    }
    if pod_sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .is_some_and(|p| p.type_ == "Unconfined")
    {
        v(
            "spec.securityContext.seccompProfile.type".into(),
            "Unconfined seccomp profiles are forbidden",
        );
    }
    if let Some(se) = pod_sc.and_then(|s| s.se_linux_options.as_ref()) {
        selinux(&mut v, "spec.securityContext.seLinuxOptions", se);
    }
    let pod_non_root = pod_sc.and_then(|s| s.run_as_non_root) == Some(true);
    let pod_seccomp_ok = pod_sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .is_some_and(|p| p.type_ == "RuntimeDefault" || p.type_ == "Localhost");
    if level == Level::Restricted && pod_sc.and_then(|s| s.run_as_user) == Some(0) {
        v(
            "spec.securityContext.runAsUser".into(),
            "restricted forbids running as UID 0",
        );
    }
    for (path, c) in containers(spec) {
        let sc: Option<&SecurityContext> = c.security_context.as_ref();
        if sc.and_then(|s| s.privileged) == Some(true) {
            v(
                format!("{path}.securityContext.privileged"),
                "privileged containers are forbidden",
            );
        }
        if sc
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process)
            == Some(true)
        {
            v(
                format!("{path}.securityContext.windowsOptions.hostProcess"),
                "Windows host processes are forbidden",
            );
        }
        if sc
            .and_then(|s| s.proc_mount.as_deref())
            .is_some_and(|m| m != "Default")
        {
            v(
                format!("{path}.securityContext.procMount"),
                "only the Default /proc mount is allowed",
            );
        }
        if sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .is_some_and(|p| p.type_ == "Unconfined")
        {
            v(
                format!("{path}.securityContext.seccompProfile.type"),
                "Unconfined seccomp profiles are forbidden",
            );
        }
        if let Some(se) = sc.and_then(|s| s.se_linux_options.as_ref()) {
            selinux(
                &mut v,
                &format!("{path}.securityContext.seLinuxOptions"),
                se,
            );
        }
        if sc
            .and_then(|s| s.app_armor_profile.as_ref())
            .is_some_and(|p| p.type_ == "Unconfined")
        {
            v(
                format!("{path}.securityContext.appArmorProfile.type"),
                "Unconfined AppArmor profiles are forbidden",
            );
        }
        for (j, p) in c.ports.iter().flatten().enumerate() {
            if p.host_port.is_some_and(|h| h != 0) {
                v(
                    format!("{path}.ports[{j}].hostPort"),
                    "host ports are forbidden",
                );
            }
        }
        let added: Vec<String> = sc
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.clone())
            .unwrap_or_default();
        for (j, cap) in added.iter().enumerate() {
            let allowed = if level == Level::Restricted {
                cap == "NET_BIND_SERVICE"
            } else {
                BASELINE_CAPABILITIES.contains(&cap.as_str())
            };
            if !allowed {
                v(
                    format!("{path}.securityContext.capabilities.add[{j}]"),
                    &format!("adding {cap} is forbidden by {}", level.as_str()),
                );
            }
        }
        if level == Level::Restricted {
            if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
                v(
                    format!("{path}.securityContext.allowPrivilegeEscalation"),
                    "restricted requires allowPrivilegeEscalation: false",
                );
            }
            let non_root = sc
                .and_then(|s| s.run_as_non_root)
                .map_or(pod_non_root, |n| n);
            if !non_root {
                v(
                    format!("{path}.securityContext.runAsNonRoot"),
                    "restricted requires runAsNonRoot: true (on the container or the pod)",
                );
            }
            if sc.and_then(|s| s.run_as_user) == Some(0) {
                v(
                    format!("{path}.securityContext.runAsUser"),
                    "restricted forbids running as UID 0",
                );
            }
            let seccomp_ok = sc
                .and_then(|s| s.seccomp_profile.as_ref())
                .map_or(pod_seccomp_ok, |p| {
                    p.type_ == "RuntimeDefault" || p.type_ == "Localhost"
                });
            if !seccomp_ok {
                v(
                    format!("{path}.securityContext.seccompProfile.type"),
                    "restricted requires a RuntimeDefault or Localhost seccomp profile (on the container or the pod)",
                );
            }
            let drops_all = sc
                .and_then(|s| s.capabilities.as_ref())
                .and_then(|c| c.drop.as_ref())
                .is_some_and(|d| d.iter().any(|x| x == "ALL"));
            if !drops_all {
                v(
                    format!("{path}.securityContext.capabilities.drop"),
                    "restricted requires dropping ALL capabilities",
                );
            }
        }
    }
    out
}

fn selinux(
    v: &mut impl FnMut(String, &str),
    path: &str,
    se: &k8s_openapi::api::core::v1::SELinuxOptions,
) {
    if se.type_.as_deref().is_some_and(|t| {
        !t.is_empty()
            && ![
                "container_t",
                "container_init_t",
                "container_kvm_t",
                "container_engine_t",
            ]
            .contains(&t)
    }) {
        v(
            format!("{path}.type"),
            "only the container_t SELinux types are allowed",
        );
    }
    if se.user.as_deref().is_some_and(|u| !u.is_empty()) {
        v(
            format!("{path}.user"),
            "setting the SELinux user is forbidden",
        );
    }
    if se.role.as_deref().is_some_and(|r| !r.is_empty()) {
        v(
            format!("{path}.role"),
            "setting the SELinux role is forbidden",
        );
    }
}

/// All violations as one message naming each field.
pub fn describe(level: Level, violations: &[Violation]) -> String {
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!(
        "violates Pod Security \"{}\": {}",
        level.as_str(),
        list.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn fields(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|x| x.field.as_str()).collect()
    }

    #[test]
    fn the_brief_template_is_baseline_but_not_restricted() {
        let s = spec(
            json!({"containers": [{"name": "w", "image": "node:20-alpine"}], "volumes": [{"name": "v", "emptyDir": {}}]}),
        );
        assert!(check(&s, &BTreeMap::new(), Level::Baseline).is_empty());
        let r = check(&s, &BTreeMap::new(), Level::Restricted);
        assert_eq!(
            fields(&r),
            [
                "spec.containers[0].securityContext.allowPrivilegeEscalation",
                "spec.containers[0].securityContext.runAsNonRoot",
                "spec.containers[0].securityContext.seccompProfile.type",
                "spec.containers[0].securityContext.capabilities.drop"
            ]
        );
    }

    #[test]
    fn baseline_names_every_escape_hatch() {
        let s = spec(json!({
            "hostNetwork": true, "hostPID": true,
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "initContainers": [{"name": "i", "image": "x", "securityContext": {"privileged": true}}],
            "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 80}],
                            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}, "seccompProfile": {"type": "Unconfined"}}}]
        }));
        let v = check(&s, &BTreeMap::new(), Level::Baseline);
        assert_eq!(
            fields(&v),
            [
                "spec.hostNetwork",
                "spec.hostPID",
                "spec.volumes[0].hostPath",
                "spec.securityContext.sysctls[0].name",
                "spec.initContainers[0].securityContext.privileged",
                "spec.containers[0].securityContext.seccompProfile.type",
                "spec.containers[0].ports[0].hostPort",
                "spec.containers[0].securityContext.capabilities.add[0]"
            ]
        );
        assert!(check(&s, &BTreeMap::new(), Level::Privileged).is_empty());
        assert!(describe(Level::Baseline, &v).starts_with(
            "violates Pod Security \"baseline\": spec.hostNetwork: host namespaces are forbidden; "
        ));
    }

    #[test]
    fn a_hardened_pod_is_restricted() {
        let s = spec(json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "x", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "v", "emptyDir": {}}]
        }));
        let none = BTreeMap::new();
        assert!(
            check(&s, &none, Level::Restricted).is_empty(),
            "{:?}",
            check(&s, &none, Level::Restricted)
        );
        let mut bad = s.clone();
        bad.volumes = Some(vec![
            serde_json::from_value(json!({"name": "n", "nfs": {"server": "s", "path": "/"}}))
                .unwrap_or_else(|e| panic!("{e}")),
        ]);
        assert_eq!(
            fields(&check(&bad, &none, Level::Restricted)),
            ["spec.volumes[0]"]
        );
    }

    #[test]
    fn baseline_closes_apparmor_and_host_process_at_every_level() {
        let s = spec(json!({
            "securityContext": {"appArmorProfile": {"type": "Unconfined"}, "windowsOptions": {"hostProcess": true}},
            "containers": [{"name": "c", "image": "x", "securityContext": {"windowsOptions": {"hostProcess": true}}}]
        }));
        let annotations = BTreeMap::from([
            (
                "container.apparmor.security.beta.kubernetes.io/c".to_string(),
                "unconfined".to_string(),
            ),
            (
                "container.apparmor.security.beta.kubernetes.io/d".to_string(),
                "runtime/default".to_string(),
            ),
            (
                "container.apparmor.security.beta.kubernetes.io/e".to_string(),
                "localhost/mine".to_string(),
            ),
        ]);
        assert_eq!(
            fields(&check(&s, &annotations, Level::Baseline)),
            [
                "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]",
                "spec.securityContext.appArmorProfile.type",
                "spec.securityContext.windowsOptions.hostProcess",
                "spec.containers[0].securityContext.windowsOptions.hostProcess"
            ]
        );
    }
}
