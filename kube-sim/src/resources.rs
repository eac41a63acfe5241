//! Per-kind admission: decoding, defaulting and validation of namespaces, pods, config maps
//! and service accounts, with the rules and messages of the real API server for the
//! fields the product uses.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
};
use serde_json::{Map, Value, json};

use super::status::{ApiError, ApiResult, Cause};
use super::store::{Kind, StoredObj};
use super::validate::{
    FieldValidation, decode_typed, dns_label_problem, dns_subdomain_problem, validate_metadata_maps,
};

/// The node every simulated pod is bound to.
pub const NODE_NAME: &str = "kube-sim";

/// A decoded request body, canonicalized through the typed k8s-openapi object.
pub struct Decoded {
    pub value: Value,
    /// Unknown fields that were dropped (reported in `Warning` headers).
    pub warnings: Vec<String>,
}

/// Decodes a request body for `kind`, checking `apiVersion`/`kind` when present.
pub fn decode(kind: Kind, body: &Value, mode: FieldValidation) -> ApiResult<Decoded> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (expected a {} object)",
            kind.kind()
        )));
    }
    if let Some(api_version) = body.get("apiVersion").and_then(Value::as_str)
        && api_version != kind.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            kind.api_version()
        )));
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != kind.kind()
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            kind.kind()
        )));
    }
    let (mut value, warnings) = match kind {
        Kind::Namespace => decode_typed::<Namespace>(body, "Namespace", mode)?,
        Kind::Pod => decode_typed::<Pod>(body, "Pod", mode)?,
        Kind::ConfigMap => decode_typed::<ConfigMap>(body, "ConfigMap", mode)?,
        Kind::ServiceAccount => decode_typed::<ServiceAccount>(body, "ServiceAccount", mode)?,
        Kind::Event => decode_typed::<Event>(body, "Event", mode)?,
        Kind::Lease => decode_typed::<Lease>(body, "Lease", mode)?,
        Kind::Secret => decode_typed::<Secret>(body, "Secret", mode)?,
        Kind::PersistentVolumeClaim => {
            decode_typed::<PersistentVolumeClaim>(body, "PersistentVolumeClaim", mode)?
        }
    };
    value["apiVersion"] = json!(kind.api_version());
    value["kind"] = json!(kind.kind());
    if value.get("metadata").is_none_or(Value::is_null) {
        value["metadata"] = json!({});
    }
    Ok(Decoded { value, warnings })
}

pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now().to_string())
}

fn meta_str<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn name_problem(kind: Kind, name: &str) -> Option<String> {
    match kind {
        Kind::Namespace => dns_label_problem(name),
        _ => dns_subdomain_problem(name),
    }
}

/// Prepares a new object for creation: namespace and name rules, system metadata,
/// kind-specific defaulting and validation. The name must already be final (the caller
/// resolves `generateName`).
pub fn admit_create(kind: Kind, namespace: &str, name: &str, mut value: Value) -> ApiResult<Value> {
    let mut causes = Vec::new();
    if let Some(why) = name_problem(kind, name) {
        causes.push(Cause::invalid("metadata.name", name, &why));
    }
    if meta_str(&value, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let meta = value["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("metadata"))?;
    meta.insert("name".into(), json!(name));
    if kind.namespaced() {
        meta.insert("namespace".into(), json!(namespace));
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    for system in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(system);
    }
    validate_metadata_maps(&value["metadata"], &mut causes);
    match kind {
        Kind::Pod => {
            default_pod(&mut value);
            validate_pod_spec(&value["spec"], &mut causes);
            value["status"] = json!({"phase": "Pending", "qosClass": qos_class(&value["spec"])});
        }
        Kind::Namespace => {
            let labels = value["metadata"]
                .as_object_mut()
                .map(|m| m.entry("labels").or_insert_with(|| json!({})));
            if let Some(labels) = labels {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
            value["spec"] = json!({"finalizers": ["kubernetes"]});
            value["status"] = json!({"phase": "Active"});
        }
        Kind::ConfigMap => validate_config_map(&value, &mut causes),
        Kind::ServiceAccount | Kind::Lease => {}
        Kind::Event => validate_event(&value, namespace, &mut causes),
        Kind::Secret => admit_secret(&mut value, &mut causes),
        Kind::PersistentVolumeClaim => admit_pvc(&mut value, &mut causes),
    }
    if causes.is_empty() {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            kind.kind(),
            kind.resource(),
            kind.group(),
            name,
            causes,
        ))
    }
}

/// A Secret as the API server stores it: `stringData` merged into base64 `data`, type
/// `Opaque` by default.
fn admit_secret(value: &mut Value, causes: &mut Vec<Cause>) {
    use base64::Engine as _;
    let string_data = value.get("stringData").and_then(Value::as_object).cloned();
    if let Some(sd) = string_data {
        let data = value
            .as_object_mut()
            .map(|o| o.entry("data").or_insert_with(|| json!({})));
        if let Some(Value::Object(data)) = data {
            for (k, v) in sd {
                let text = v.as_str().unwrap_or_default();
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
        if let Some(o) = value.as_object_mut() {
            o.remove("stringData");
        }
    }
    // Unset, null or "" (protobuf's unset) all default to Opaque.
    if value
        .get("type")
        .is_none_or(|t| t.is_null() || t.as_str() == Some(""))
    {
        value["type"] = json!("Opaque");
    }
    if let Some(data) = value.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let ok = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                causes.push(Cause::invalid(format!("data[{k}]"), "", "must be base64"));
            }
        }
    }
}

/// A claim is bound at once (the simulator has no provisioner to wait for): its
/// capacity is what it requests.
fn admit_pvc(value: &mut Value, causes: &mut Vec<Cause>) {
    let request = value.pointer("/spec/resources/requests/storage").cloned();
    match request {
        Some(q) => {
            value["status"] = json!({
                "phase": "Bound",
                "accessModes": value.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                "capacity": {"storage": q}
            });
        }
        None => causes.push(Cause {
            reason: "FieldValueRequired",
            field: "spec.resources[storage]".into(),
            message: "Required value".into(),
        }),
    }
    if value
        .pointer("/spec/accessModes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        causes.push(Cause {
            reason: "FieldValueRequired",
            field: "spec.accessModes".into(),
            message: "Required value: at least 1 access mode is required".into(),
        });
    }
}

/// An event must name the object it is about, in its own namespace (the real server's
/// `involvedObject.namespace` rule).
fn validate_event(value: &Value, namespace: &str, causes: &mut Vec<Cause>) {
    match value.get("involvedObject") {
        Some(obj) if obj.is_object() => {
            if let Some(ns) = obj.get("namespace").and_then(Value::as_str)
                && !ns.is_empty()
                && ns != namespace
            {
                causes.push(Cause::invalid(
                    "involvedObject.namespace",
                    ns,
                    "does not match event.namespace",
                ));
            }
        }
        _ => causes.push(Cause {
            reason: "FieldValueRequired",
            field: "involvedObject".into(),
            message: "Required value".into(),
        }),
    }
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateScope {
    /// The main resource: status changes are ignored.
    Main,
    /// The `status` subresource: only status changes are kept.
    Status,
}

/// Prepares an update of `old` to `new`: optimistic concurrency, immutable fields and
/// kind-specific rules.
pub fn admit_update(
    kind: Kind,
    old: &StoredObj,
    mut new: Value,
    scope: UpdateScope,
) -> ApiResult<Value> {
    let old_value = old.value();
    let name = old.key.name.to_string();
    if let Some(rv) = meta_str(&new, "resourceVersion")
        && !rv.is_empty()
        && rv != old.rv.to_string()
    {
        return Err(ApiError::conflict(
            kind.resource(),
            kind.group(),
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut causes = Vec::new();
    for (field, what) in [
        ("name", "metadata.name"),
        ("namespace", "metadata.namespace"),
    ] {
        if let Some(v) = meta_str(&new, field)
            && !v.is_empty()
            && Some(v) != meta_str(&old_value, field)
        {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: what.into(),
                message: format!("Invalid value: \"{v}\": field is immutable"),
            });
        }
    }
    if let Some(uid) = meta_str(&new, "uid")
        && !uid.is_empty()
        && uid != old.uid
    {
        return Err(ApiError::conflict(
            kind.resource(),
            kind.group(),
            &name,
            &format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {uid}",
                old.uid
            ),
        ));
    }
    // System metadata always comes from the stored object.
    {
        let old_meta = old_value["metadata"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let meta = new["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::internal("metadata"))?;
        for system in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generateName",
        ] {
            match old_meta.get(system) {
                Some(v) => {
                    meta.insert(system.into(), v.clone());
                }
                None => {
                    meta.remove(system);
                }
            }
        }
        meta.remove("managedFields");
        if scope == UpdateScope::Status {
            // The status subresource ignores metadata changes other than these.
            for user in ["labels", "annotations", "finalizers", "ownerReferences"] {
                match old_meta.get(user) {
                    Some(v) => {
                        meta.insert(user.into(), v.clone());
                    }
                    None => {
                        meta.remove(user);
                    }
                }
            }
        }
    }
    validate_metadata_maps(&new["metadata"], &mut causes);
    match scope {
        UpdateScope::Main => match old_value.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        },
        UpdateScope::Status => {
            if let Some(spec) = old_value.get("spec") {
                new["spec"] = spec.clone();
            }
        }
    }
    match kind {
        Kind::Pod if scope == UpdateScope::Main => {
            default_pod(&mut new);
            validate_pod_spec(&new["spec"], &mut causes);
            if causes.is_empty() {
                check_pod_spec_update(&old_value["spec"], &new["spec"], &mut causes);
            }
        }
        Kind::Secret => admit_secret(&mut new, &mut causes),
        Kind::ConfigMap => {
            validate_config_map(&new, &mut causes);
            if old_value.get("immutable") == Some(&json!(true)) {
                for field in ["data", "binaryData"] {
                    if old_value.get(field) != new.get(field) {
                        causes.push(Cause::forbidden(
                            field,
                            "field is immutable when `immutable` is set",
                        ));
                    }
                }
                if new.get("immutable") != Some(&json!(true)) {
                    causes.push(Cause::forbidden(
                        "immutable",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        Kind::Namespace => {
            if let Some(labels) = new["metadata"]
                .as_object_mut()
                .map(|m| m.entry("labels").or_insert_with(|| json!({})))
            {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
            if scope == UpdateScope::Main {
                new["spec"] = old_value["spec"].clone();
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(new)
    } else {
        Err(ApiError::invalid(
            kind.kind(),
            kind.resource(),
            kind.group(),
            &name,
            causes,
        ))
    }
}

/// The real server's message for a forbidden pod spec change.
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn check_pod_spec_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let mut allowed = old.clone();
    for list in ["containers", "initContainers"] {
        if let (Some(a), Some(n)) = (
            allowed.get_mut(list).and_then(Value::as_array_mut),
            new.get(list).and_then(Value::as_array),
        ) && a.len() == n.len()
        {
            for (ac, nc) in a.iter_mut().zip(n) {
                if let Some(image) = nc.get("image") {
                    ac["image"] = image.clone();
                }
            }
        }
    }
    for field in ["activeDeadlineSeconds", "tolerations"] {
        match new.get(field) {
            Some(v) => allowed[field] = v.clone(),
            None => {
                if let Some(o) = allowed.as_object_mut() {
                    o.remove(field);
                }
            }
        }
    }
    if &allowed != new {
        causes.push(Cause::forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
}

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.into(), value);
    }
}

/// The defaults the real API server and its admission plugins fill in.
fn default_pod(pod: &mut Value) {
    if pod.get("spec").is_none_or(Value::is_null) {
        pod["spec"] = json!({});
    }
    let Some(spec) = pod["spec"].as_object_mut() else {
        return;
    };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "priority", json!(0));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(sa));
    spec.insert("serviceAccount".into(), json!(sa));
    set_default(
        spec,
        "tolerations",
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]),
    );
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                let tag = image
                    .rsplit('/')
                    .next()
                    .and_then(|last| last.split_once(':'))
                    .map(|(_, t)| t);
                let policy = if tag.is_none_or(|t| t == "latest") && !image.contains('@') {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                set_default(c, "imagePullPolicy", json!(policy));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

fn qos_class(spec: &Value) -> &'static str {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        let full = limits.is_some_and(|l| l.contains_key("cpu") && l.contains_key("memory"));
        let equal = requests.is_none_or(|r| {
            r.iter()
                .all(|(k, v)| limits.and_then(|l| l.get(k)) == Some(v))
        });
        guaranteed &= full && equal;
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('=') && s.chars().all(|c| (' '..='~').contains(&c))
}

fn validate_container(
    c: &Value,
    path: &str,
    volumes: &[String],
    names: &mut Vec<String>,
    causes: &mut Vec<Cause>,
    init: bool,
) {
    match c.get("name").and_then(Value::as_str) {
        None | Some("") => causes.push(Cause::required(format!("{path}.name"))),
        Some(name) => {
            if let Some(why) = dns_label_problem(name) {
                causes.push(Cause::invalid(format!("{path}.name"), name, &why));
            } else if names.iter().any(|n| n == name) {
                causes.push(Cause::duplicate(format!("{path}.name"), name));
            }
            names.push(name.to_string());
        }
    }
    if c.get("image")
        .and_then(Value::as_str)
        .is_none_or(|i| i.trim().is_empty())
    {
        causes.push(Cause::required(format!("{path}.image")));
    }
    if let Some(policy) = c.get("imagePullPolicy").and_then(Value::as_str)
        && !["Always", "IfNotPresent", "Never"].contains(&policy)
    {
        causes.push(Cause::unsupported(
            format!("{path}.imagePullPolicy"),
            policy,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    if let Some(policy) = c.get("restartPolicy").and_then(Value::as_str)
        && (!init || policy != "Always")
    {
        causes.push(Cause::forbidden(
            format!("{path}.restartPolicy"),
            "may not be set for non-init containers",
        ));
    }
    let mut port_names = Vec::new();
    for (i, p) in c
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ppath = format!("{path}.ports[{i}]");
        let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            causes.push(Cause::invalid(
                format!("{ppath}.containerPort"),
                &port.to_string(),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(proto) = p.get("protocol").and_then(Value::as_str)
            && !["TCP", "UDP", "SCTP"].contains(&proto)
        {
            causes.push(Cause::unsupported(
                format!("{ppath}.protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
        if let Some(name) = p.get("name").and_then(Value::as_str) {
            if name.len() > 15
                || dns_label_problem(name).is_some()
                || !name.chars().any(|c| c.is_ascii_lowercase())
            {
                causes.push(Cause::invalid(format!("{ppath}.name"), name, "must be no more than 15 characters, contain only lowercase alphanumerics and '-', and at least one letter"));
            } else if port_names.contains(&name) {
                causes.push(Cause::duplicate(format!("{ppath}.name"), name));
            }
            port_names.push(name);
        }
    }
    for (i, e) in c
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
        if !is_env_name(name) {
            causes.push(Cause::invalid(format!("{path}.env[{i}].name"), name, "a valid environment variable name must consist only of printable ASCII characters other than '='"));
        }
    }
    let mut mount_paths = Vec::new();
    for (i, m) in c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mpath = format!("{path}.volumeMounts[{i}]");
        let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
        if !volumes.iter().any(|v| v == name) {
            causes.push(Cause {
                reason: "FieldValueNotFound",
                field: format!("{mpath}.name"),
                message: format!("Not found: \"{name}\""),
            });
        }
        match m.get("mountPath").and_then(Value::as_str) {
            None | Some("") => causes.push(Cause::required(format!("{mpath}.mountPath"))),
            Some(p) if mount_paths.contains(&p) => causes.push(Cause::invalid(
                format!("{mpath}.mountPath"),
                p,
                "must be unique",
            )),
            Some(p) => mount_paths.push(p),
        }
    }
    for hook in ["preStop", "postStart"] {
        if let Some(h) = c.pointer(&format!("/lifecycle/{hook}")) {
            let handlers = ["exec", "httpGet", "tcpSocket", "sleep"]
                .iter()
                .filter(|k| h.get(**k).is_some())
                .count();
            if handlers != 1 {
                causes.push(
                    Cause::required(format!("{path}.lifecycle.{hook}")).with_message(
                        "must specify exactly one handler type (exec, httpGet, tcpSocket or sleep)",
                    ),
                );
            } else if let Some(exec) = h.get("exec")
                && exec
                    .get("command")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
            {
                causes.push(Cause::required(format!(
                    "{path}.lifecycle.{hook}.exec.command"
                )));
            }
        }
    }
}

impl Cause {
    fn with_message(mut self, message: &str) -> Self {
        self.message = format!("{}: {message}", self.message);
        self
    }
}

fn validate_pod_spec(spec: &Value, causes: &mut Vec<Cause>) {
    let mut volumes = Vec::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(why) = dns_label_problem(name) {
            causes.push(Cause::invalid(
                format!("spec.volumes[{i}].name"),
                name,
                &why,
            ));
        } else if volumes.iter().any(|n| n == name) {
            causes.push(Cause::duplicate(format!("spec.volumes[{i}].name"), name));
        }
        volumes.push(name.to_string());
    }
    let mut names = Vec::new();
    for (i, c) in spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        validate_container(
            c,
            &format!("spec.initContainers[{i}]"),
            &volumes,
            &mut names,
            causes,
            true,
        );
    }
    match spec.get("containers").and_then(Value::as_array) {
        Some(containers) if !containers.is_empty() => {
            for (i, c) in containers.iter().enumerate() {
                validate_container(
                    c,
                    &format!("spec.containers[{i}]"),
                    &volumes,
                    &mut names,
                    causes,
                    false,
                );
            }
        }
        _ => causes.push(Cause::required("spec.containers")),
    }
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        causes.push(Cause::unsupported(
            "spec.restartPolicy",
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(sa) = spec.get("serviceAccountName").and_then(Value::as_str)
        && let Some(why) = dns_subdomain_problem(sa)
    {
        causes.push(Cause::invalid("spec.serviceAccountName", sa, &why));
    }
    if let Some(grace) = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        && grace < 0
    {
        causes.push(Cause::invalid(
            "spec.terminationGracePeriodSeconds",
            &grace.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

fn validate_config_map(cm: &Value, causes: &mut Vec<Cause>) {
    let mut total = 0usize;
    let data = cm.get("data").and_then(Value::as_object);
    let binary = cm.get("binaryData").and_then(Value::as_object);
    for (field, map) in [("data", data), ("binaryData", binary)] {
        for (k, v) in map.into_iter().flatten() {
            total += v.as_str().map_or(0, str::len);
            let valid = !k.is_empty()
                && k.len() <= 253
                && k != "."
                && k != ".."
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                causes.push(Cause::invalid(
                    field.to_string(),
                    k,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
            if field == "binaryData" && data.is_some_and(|d| d.contains_key(k)) {
                causes.push(Cause::invalid(
                    format!("data[{k}]"),
                    k,
                    "duplicate of key present in binaryData",
                ));
            }
        }
    }
    if total > 1024 * 1024 {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: "data".into(),
            message: format!("Too long: must have at most 1048576 bytes (got {total})"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        let decoded = decode(
            Kind::Pod,
            &json!({"metadata": {"name": "p"}, "spec": spec}),
            FieldValidation::Warn,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        decoded.value
    }

    #[test]
    fn pods_get_the_real_defaults() {
        let v = admit_create(Kind::Pod, "default", "p", pod(json!({"containers": [{"name": "a", "image": "node:20-alpine", "ports": [{"containerPort": 3000}]}]})))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["spec"]["restartPolicy"], "Always");
        assert_eq!(v["spec"]["serviceAccountName"], "default");
        assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(
            v["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(v["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(v["status"]["phase"], "Pending");
        assert_eq!(v["status"]["qosClass"], "BestEffort");
        assert_eq!(v["metadata"]["namespace"], "default");
        assert!(v["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    }

    #[test]
    fn invalid_pods_name_every_bad_field() {
        let err = admit_create(Kind::Pod, "default", "p", pod(json!({
            "containers": [{"name": "Bad_Name", "image": ""}, {"name": "b", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}],
            "restartPolicy": "Sometimes"
        })))
        .expect_err("invalid");
        assert_eq!(err.status_code(), 422);
        let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.containers[0].name",
                "spec.containers[0].image",
                "spec.containers[1].volumeMounts[0].name",
                "spec.restartPolicy"
            ]
        );
        let err =
            admit_create(Kind::Pod, "default", "p", pod(json!({}))).expect_err("no containers");
        assert_eq!(err.causes[0].field, "spec.containers");
        let err = admit_create(
            Kind::Pod,
            "default",
            "Not_OK",
            pod(json!({"containers": [{"name": "a", "image": "x"}]})),
        )
        .expect_err("bad name");
        assert_eq!(err.causes[0].field, "metadata.name");
    }

    #[test]
    fn pod_updates_may_only_change_images() {
        let created = admit_create(
            Kind::Pod,
            "default",
            "p",
            pod(json!({"containers": [{"name": "a", "image": "x:1"}]})),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let stored = StoredObjFixture::new(created.clone());
        let mut new = created.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        assert!(admit_update(Kind::Pod, &stored.0, new, UpdateScope::Main).is_ok());
        let mut new = created.clone();
        new["spec"]["containers"][0]["command"] = json!(["sh"]);
        let err =
            admit_update(Kind::Pod, &stored.0, new, UpdateScope::Main).expect_err("forbidden");
        assert_eq!(err.status_code(), 422);
        assert!(
            err.message.contains("pod updates may not change fields"),
            "{}",
            err.message
        );
        let mut stale = created;
        stale["metadata"]["resourceVersion"] = json!("1");
        let err = admit_update(Kind::Pod, &stored.0, stale, UpdateScope::Main).expect_err("stale");
        assert_eq!(err.status_code(), 409);
    }

    #[test]
    fn immutable_config_maps_refuse_data_changes() {
        let cm = decode(
            Kind::ConfigMap,
            &json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true}),
            FieldValidation::Warn,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .value;
        let created =
            admit_create(Kind::ConfigMap, "default", "c", cm).unwrap_or_else(|e| panic!("{e}"));
        let stored = StoredObjFixture::new(created.clone());
        let mut new = created;
        new["data"]["a"] = json!("2");
        let err = admit_update(Kind::ConfigMap, &stored.0, new, UpdateScope::Main)
            .expect_err("immutable");
        assert_eq!(err.causes[0].field, "data");
        let bad = decode(
            Kind::ConfigMap,
            &json!({"metadata": {"name": "c"}, "data": {"a b": "1"}}),
            FieldValidation::Warn,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .value;
        assert!(admit_create(Kind::ConfigMap, "default", "c", bad).is_err());
    }

    #[test]
    fn decode_refuses_the_wrong_kind_and_version() {
        assert!(
            decode(
                Kind::Pod,
                &json!({"kind": "ConfigMap"}),
                FieldValidation::Warn
            )
            .is_err()
        );
        assert!(
            decode(
                Kind::Pod,
                &json!({"apiVersion": "apps/v1"}),
                FieldValidation::Warn
            )
            .is_err()
        );
        assert!(decode(Kind::Pod, &json!([1]), FieldValidation::Warn).is_err());
    }

    struct StoredObjFixture(StoredObj);

    impl StoredObjFixture {
        fn new(value: Value) -> Self {
            let store = super::super::store::Store::new(4);
            let name = value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let key = super::super::store::ObjKey::new("default", &name);
            let out = store.mutate(Kind::Pod, &key, |_| {
                Ok(super::super::store::Change::Put(value))
            });
            let Ok(super::super::store::Outcome::Stored { obj, .. }) = out else {
                panic!("store")
            };
            StoredObjFixture(StoredObj {
                key: obj.key.clone(),
                rv: obj.rv,
                uid: obj.uid.clone(),
                json: obj.json.clone(),
                labels: obj.labels.clone(),
                fields: obj.fields.clone(),
                terminating: obj.terminating,
            })
        }
    }
}
