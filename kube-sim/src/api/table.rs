//! `meta.k8s.io/v1` Table rendering, which kubectl asks for (`Accept: ...;as=Table`), with
//! the columns and the STATUS logic of kubectl's own printers.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::store::Kind;

fn column(name: &str, kind: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": kind, "format": if name == "Name" { "name" } else { "" }, "description": description, "priority": priority})
}

fn columns(kind: Kind) -> Vec<Value> {
    let name = column(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = column(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match kind {
        Kind::Pod => vec![
            name,
            column(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted.",
            ),
            age,
            column("IP", "string", 1, "The IP address assigned to the pod."),
            column(
                "Node",
                "string",
                1,
                "The name of the node the pod is scheduled to.",
            ),
            column(
                "Nominated Node",
                "string",
                1,
                "The name of the node where the pod may be scheduled.",
            ),
            column(
                "Readiness Gates",
                "string",
                1,
                "The readiness gates of the pod.",
            ),
        ],
        Kind::Namespace => vec![
            name,
            column("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        Kind::ConfigMap => vec![
            name,
            column("Data", "string", 0, "Number of data keys"),
            age,
        ],
        Kind::ServiceAccount => vec![
            name,
            column("Secrets", "string", 0, "Number of secrets"),
            age,
        ],
        // `kubectl get events`: what kubectl's own printer shows.
        Kind::Event => vec![
            column("Last Seen", "string", 0, "Time of the last occurrence."),
            column("Type", "string", 0, "Normal or Warning."),
            column(
                "Reason",
                "string",
                0,
                "Why the event happened, in one word.",
            ),
            column("Object", "string", 0, "The object the event is about."),
            column("Message", "string", 0, "What happened."),
        ],
        Kind::Lease => vec![
            name,
            column("Holder", "string", 0, "The current holder of the lease."),
            age,
        ],
        Kind::Secret => vec![
            name,
            column("Type", "string", 0, "The type of secret"),
            column("Data", "string", 0, "Number of data keys"),
            age,
        ],
        Kind::PersistentVolumeClaim => vec![
            name,
            column("Status", "string", 0, "The phase of the claim."),
            column("Capacity", "string", 0, "The storage bound."),
            column("Access Modes", "string", 0, "How it may be mounted."),
            age,
        ],
    }
}

/// kubectl's `translateTimestampSince`: 5s, 3m2s, 4h, 2d3h, 400d…
pub fn human_age(created: Option<&str>, now: Timestamp) -> String {
    let Some(ts) = created.and_then(|c| c.parse::<Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = now.as_second().saturating_sub(ts.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s}s")
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        let rm = m % 60;
        if rm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rm}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        let rh = h % 24;
        if rh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rh}h")
        }
    } else {
        format!("{d}d")
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// kubectl's pod STATUS column.
pub fn pod_status_reason(pod: &Value) -> String {
    let mut reason = str_at(pod, "/status/phase").to_string();
    if let Some(r) = pod.pointer("/status/reason").and_then(Value::as_str) {
        reason = r.to_string();
    }
    let empty = Vec::new();
    let init_statuses = pod
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let init_count = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        if let Some(t) = c.pointer("/state/terminated") {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            let r = t.get("reason").and_then(Value::as_str).unwrap_or_default();
            reason = if r.is_empty() {
                format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode")
                        .and_then(Value::as_i64)
                        .unwrap_or_default()
                )
            } else {
                format!("Init:{r}")
            };
            initializing = true;
        } else if let Some(w) = c
            .pointer("/state/waiting")
            .and_then(|w| w.get("reason"))
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{w}");
            initializing = true;
        } else if c.get("started") == Some(&json!(true))
            && c.pointer("/state/running").is_some()
            && is_sidecar(pod, i)
        {
            continue;
        } else {
            reason = format!("Init:{i}/{init_count}");
            initializing = true;
        }
        break;
    }
    if !initializing {
        let mut has_running = false;
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for c in statuses.iter().rev() {
            if let Some(w) = c
                .pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                reason = w.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = match t
                    .get("reason")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                {
                    Some(r) => r.to_string(),
                    None => format!(
                        "ExitCode:{}",
                        t.get("exitCode")
                            .and_then(Value::as_i64)
                            .unwrap_or_default()
                    ),
                };
            } else if c.get("ready") == Some(&json!(true)) && c.pointer("/state/running").is_some()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    reason
}

fn is_sidecar(pod: &Value, i: usize) -> bool {
    pod.pointer(&format!("/spec/initContainers/{i}/restartPolicy"))
        .and_then(Value::as_str)
        == Some("Always")
}

fn cells(kind: Kind, obj: &Value, now: Timestamp) -> Vec<Value> {
    let name = json!(str_at(obj, "/metadata/name"));
    let age = json!(human_age(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
        now
    ));
    match kind {
        Kind::Pod => {
            let empty = Vec::new();
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready") == Some(&json!(true)))
                .count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum();
            let ip = obj
                .pointer("/status/podIP")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            let node = obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status_reason(obj)),
                json!(restarts.to_string()),
                age,
                json!(ip),
                json!(node),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        Kind::Namespace => vec![name, json!(str_at(obj, "/status/phase")), age],
        Kind::ConfigMap => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, json!(n), age]
        }
        Kind::ServiceAccount => vec![
            name,
            json!(
                obj.get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            age,
        ],
        Kind::Event => {
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find_map(|p| obj.pointer(p).and_then(Value::as_str));
            let object = format!(
                "{}/{}",
                str_at(obj, "/involvedObject/kind").to_ascii_lowercase(),
                str_at(obj, "/involvedObject/name")
            );
            vec![
                json!(human_age(last, now)),
                json!(str_at(obj, "/type")),
                json!(str_at(obj, "/reason")),
                json!(object),
                json!(str_at(obj, "/message")),
            ]
        }
        Kind::Lease => vec![name, json!(str_at(obj, "/spec/holderIdentity")), age],
        Kind::Secret => vec![
            name,
            json!(str_at(obj, "/type")),
            json!(
                obj.get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            ),
            age,
        ],
        Kind::PersistentVolumeClaim => {
            let modes = obj
                .pointer("/status/accessModes")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .map(|s| match s {
                            "ReadWriteOnce" => "RWO",
                            "ReadOnlyMany" => "ROX",
                            "ReadWriteMany" => "RWX",
                            other => other,
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(str_at(obj, "/status/phase")),
                json!(str_at(obj, "/status/capacity/storage")),
                json!(modes),
                age,
            ]
        }
    }
}

/// Renders objects as a Table; `include_object` is the `includeObject` parameter.
pub fn render(kind: Kind, objects: &[Value], list_meta: Value, include_object: &str) -> Value {
    let now = Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let object = match include_object {
                "None" => Value::Null,
                "Object" => obj.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))}),
            };
            json!({"cells": cells(kind, obj, now), "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(kind),
        "rows": rows,
    })
}

/// Whether the client asked for a Table (kubectl does; typed clients do not).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now: Timestamp = "2026-01-10T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(human_age(Some("2026-01-09T23:59:55Z"), now), "5s");
        assert_eq!(human_age(Some("2026-01-09T23:56:58Z"), now), "3m2s");
        assert_eq!(human_age(Some("2026-01-09T20:00:00Z"), now), "4h");
        assert_eq!(human_age(Some("2026-01-07T21:00:00Z"), now), "2d3h");
        assert_eq!(human_age(None, now), "<unknown>");
    }

    #[test]
    fn pod_status_follows_kubectl() {
        let running = json!({"status": {"phase": "Running", "containerStatuses": [{"ready": true, "state": {"running": {}}}]}});
        assert_eq!(pod_status_reason(&running), "Running");
        let crash = json!({"status": {"phase": "Running", "containerStatuses": [{"ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status_reason(&crash), "CrashLoopBackOff");
        let init_err = json!({"spec": {"initContainers": [{}]}, "status": {"phase": "Pending", "initContainerStatuses": [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}});
        assert_eq!(pod_status_reason(&init_err), "Init:Error");
        let init_wait = json!({"spec": {"initContainers": [{}, {}]}, "status": {"phase": "Pending", "initContainerStatuses": [{"state": {"terminated": {"exitCode": 0}}}, {"state": {"running": {}}}]}});
        assert_eq!(pod_status_reason(&init_wait), "Init:1/2");
        let deleting =
            json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status_reason(&deleting), "Terminating");
    }

    #[test]
    fn table_is_requested_by_kubectl_style_accept_headers() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
