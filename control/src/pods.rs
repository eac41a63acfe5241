//! The pod tools of the original no-crd v0.2.0: same names, inputs, defaults and result
//! shapes, with bounded outputs and checked inputs.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, LogParams};
use serde_json::{Value, json};

use shared::names;

use crate::caller::Caller;
use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::policy;

/// Rows a list returns when the caller sets no `limit`.
pub const DEFAULT_LIST_LIMIT: u32 = 500;
/// Log lines returned when the caller sets neither `tailLines` nor `limitBytes`.
pub const DEFAULT_TAIL_LINES: i64 = 500;

fn positive(name: &str, v: Option<u32>) -> Result<(), ToolError> {
    match v {
        Some(0) => Err(ToolError::bad_input(format!(
            "{name} must be greater than 0"
        ))),
        _ => Ok(()),
    }
}

fn summary(pod: &Pod) -> Value {
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    json!({
        "name": pod.metadata.name,
        "namespace": pod.metadata.namespace,
        "phase": status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Unknown".into()),
        "ready": statuses.iter().filter(|c| c.ready).count(),
        "total": pod.spec.as_ref().map_or(0, |s| s.containers.len()),
        "restarts": statuses.iter().map(|c| i64::from(c.restart_count)).sum::<i64>(),
        "podIP": status.and_then(|s| s.pod_ip.clone()),
        "node": pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        "labels": pod.metadata.labels.clone().unwrap_or_default(),
        "annotations": pod.metadata.annotations.clone().unwrap_or_default(),
    })
}

/// The pod `name` in `ns` if `who` may act on it; the same answer whether it is missing
/// or someone else's (`policy::not_found`).
pub async fn owned_pod(
    ctx: &Context,
    ns: &str,
    name: &str,
    who: &Caller,
) -> Result<Pod, ToolError> {
    crate::valid::object(name, "pod")?;
    let pod = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await?;
    match pod {
        Some(p) if who.may_access(&p) => Ok(p),
        _ => Err(policy::not_found("pod", name, ns)),
    }
}

/// Which pods `list_pods` returns.
#[derive(Debug, Default, Clone)]
pub struct PodQuery {
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<u32>,
}

pub async fn list_pods(ctx: &Context, query: PodQuery, who: &Caller) -> Result<Outcome, ToolError> {
    positive("limit", query.limit)?;
    let ns = policy::pod_namespace(ctx, who, query.namespace.as_deref())?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut lp = ListParams::default().limit(query.limit.unwrap_or(DEFAULT_LIST_LIMIT));
    // A user's list is narrowed on the server to pods labelled as theirs (the exact
    // check is the owner annotation, below).
    let owner = who.restricted_to().map(|sub| {
        format!(
            "{}={}",
            names::USER_SUB_LABEL,
            crate::spawner::owner_label(sub)
        )
    });
    let labels: Vec<&str> = [query.label_selector.as_deref(), owner.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect();
    if !labels.is_empty() {
        lp = lp.labels(&labels.join(","));
    }
    if let Some(f) = &query.field_selector {
        lp = lp.fields(f);
    }
    let list = api.list(&lp).await?;
    let pods: Vec<Value> = list
        .items
        .iter()
        .filter(|p| who.may_access(p))
        .map(summary)
        .collect();
    let mut text = String::from("NAME\tPHASE\tREADY\tRESTARTS\tPOD-IP\tNODE");
    if pods.is_empty() {
        text = "(no pods)".into();
    }
    for p in &pods {
        let s = |k: &str| {
            p[k].as_str()
                .map(str::to_string)
                .unwrap_or_else(|| "-".into())
        };
        text.push_str(&format!(
            "\n{}\t{}\t{}/{}\t{}\t{}\t{}",
            s("name"),
            s("phase"),
            p["ready"],
            p["total"],
            p["restarts"],
            s("podIP"),
            s("node")
        ));
    }
    let mut structured = json!({"pods": pods});
    if let Some(token) = list.metadata.continue_.filter(|c| !c.is_empty()) {
        // Bounded by default: say there is more rather than returning everything.
        text.push_str("\n(more pods exist: raise `limit` or narrow the selector)");
        structured["truncated"] = json!(true);
        let _ = token;
    }
    Ok(Outcome { text, structured })
}

pub async fn get_pod(
    ctx: &Context,
    namespace: Option<&str>,
    name: &str,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    let ns = policy::pod_namespace(ctx, who, namespace)?;
    let pod = owned_pod(ctx, &ns, name, who).await?;
    let value = serde_json::to_value(&pod).map_err(|e| ToolError {
        code: 500,
        message: e.to_string(),
    })?;
    Ok(Outcome {
        text: serde_json::to_string_pretty(&value).unwrap_or_default(),
        structured: json!({"pod": value}),
    })
}

pub async fn delete_pod(
    ctx: &Context,
    namespace: Option<&str>,
    name: &str,
    grace_period_seconds: Option<u32>,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    let ns = policy::pod_namespace(ctx, who, namespace)?;
    let pod = owned_pod(ctx, &ns, name, who).await?;
    let dp = DeleteParams {
        grace_period_seconds,
        // Only the pod just checked: a pod made since under the same name is not touched.
        preconditions: Some(kube::api::Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .delete(name, &dp)
        .await?;
    Ok(Outcome {
        text: format!("Deleted pod {name} from namespace {ns}"),
        structured: json!({"name": name, "namespace": ns}),
    })
}

/// Which log lines `get_pod_logs` returns.
#[derive(Debug, Default, Clone)]
pub struct LogQuery {
    pub container: Option<String>,
    pub tail_lines: Option<u32>,
    pub since_seconds: Option<u32>,
    pub limit_bytes: Option<u32>,
    pub timestamps: bool,
    pub previous: bool,
}

pub async fn get_pod_logs(
    ctx: &Context,
    namespace: Option<&str>,
    name: &str,
    query: LogQuery,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    positive("tailLines", query.tail_lines)?;
    positive("sinceSeconds", query.since_seconds)?;
    positive("limitBytes", query.limit_bytes)?;
    let ns = policy::pod_namespace(ctx, who, namespace)?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod = owned_pod(ctx, &ns, name, who).await?;
    let container = match query.container {
        Some(c) => {
            crate::valid::container(&c)?;
            Some(c)
        }
        None => {
            let names: Vec<String> = pod
                .spec
                .map(|s| s.containers.into_iter().map(|c| c.name).collect())
                .unwrap_or_default();
            names
                .iter()
                .find(|n| *n == "agent")
                .or(names.first())
                .cloned()
        }
    };
    let tail = match (query.tail_lines, query.limit_bytes) {
        (Some(t), _) => Some(i64::from(t)),
        (None, None) => Some(DEFAULT_TAIL_LINES),
        (None, Some(_)) => None,
    };
    let lp = LogParams {
        container,
        tail_lines: tail,
        since_seconds: query.since_seconds.map(i64::from),
        limit_bytes: query.limit_bytes.map(i64::from),
        timestamps: query.timestamps,
        previous: query.previous,
        ..Default::default()
    };
    let logs = api.logs(name, &lp).await?;
    let text = if logs.is_empty() {
        "(no logs)".to_string()
    } else {
        logs.clone()
    };
    Ok(Outcome {
        text,
        structured: json!({"logs": logs}),
    })
}

pub async fn list_namespaces(ctx: &Context) -> Result<Outcome, ToolError> {
    let names: Vec<String> = if ctx.mode == crate::config::Mode::Namespaced {
        vec![ctx.namespace.clone()]
    } else {
        match Api::<Namespace>::all(ctx.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => {
                let mut accessible = Vec::new();
                for name in list.items.into_iter().filter_map(|n| n.metadata.name) {
                    // A namespace whose pods we may not list is not offered.
                    let probe = Api::<Pod>::namespaced(ctx.client.clone(), &name)
                        .list(&ListParams::default().limit(1))
                        .await;
                    if !matches!(probe, Err(kube::Error::Api(ref s)) if s.code == 403) {
                        accessible.push(name);
                    }
                }
                accessible
            }
            Err(kube::Error::Api(s)) if s.code == 403 => vec![ctx.namespace.clone()],
            Err(e) => return Err(e.into()),
        }
    };
    let text = if names.is_empty() {
        "(no accessible namespaces)".into()
    } else {
        format!("NAME\n{}", names.join("\n"))
    };
    Ok(Outcome {
        text,
        structured: json!({"namespaces": names}),
    })
}

pub fn current_namespace(ctx: &Context, who: &Caller) -> Outcome {
    let role = who.role();
    let namespace = match role {
        crate::caller::Role::Admin => &ctx.namespace,
        crate::caller::Role::User => &ctx.workspace_namespace,
    };
    let mut text = format!(
        "Namespace: {namespace}\nMode: {}\nRole: {}",
        ctx.mode.as_str(),
        role.as_str()
    );
    let mut structured = json!({
        "namespace": namespace, "mode": ctx.mode.as_str(), "role": role.as_str(),
        "workspaceNamespace": ctx.workspace_namespace, "templateNamespace": ctx.namespace,
    });
    if let Some(sub) = who.subject() {
        text.push_str(&format!("\nSigned in as: {sub}"));
        structured["subject"] = json!(sub);
    }
    if let Some(report) = ctx.permissions.as_ref().filter(|r| !r.disabled.is_empty()) {
        // Say why tools an agent may expect are missing.
        text.push_str(&format!(
            "\nDisabled tools (missing Kubernetes permissions; see check_permissions): {}",
            report.disabled.join(", ")
        ));
        structured["disabledTools"] = json!(report.disabled);
    }
    Outcome { text, structured }
}
