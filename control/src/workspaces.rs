//! Workspaces against the cluster: spawn (idempotent per id), stop, list, and the
//! template tools' reads. The pure decisions live in `templates` and `spawner`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use shared::ids::WorkspaceId;
use shared::names;
use shared::route::RouteState;

use crate::caller::{self, Caller};
use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::pod_security;
use crate::progress::Progress;
use crate::spawner::{self, SpawnInput};
use crate::templates::{self, Template};

fn workspace_selector(id: Option<&WorkspaceId>) -> String {
    let mut s = format!("{}={}", names::TYPE_LABEL, names::TYPE_WORKSPACE);
    if let Some(id) = id {
        s.push_str(&format!(",{}={id}", names::WORKSPACE_ID_LABEL));
    }
    s
}

fn parse_id(id: &str) -> Result<WorkspaceId, ToolError> {
    WorkspaceId::parse(id).map_err(|e| ToolError::bad_input(format!("id: {e}")))
}

/// The workspace's URL on the gateway, when `--gateway-url` is set.
pub fn workspace_url(ctx: &Context, id: &WorkspaceId) -> Option<String> {
    ctx.gateway_url
        .as_ref()
        .map(|base| format!("{}/route/{id}/", base.trim_end_matches('/')))
}

/// Live (not terminating) workspace pods with this id.
async fn find(ctx: &Context, ns: &str, id: &WorkspaceId) -> Result<Vec<Pod>, ToolError> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&workspace_selector(Some(id))))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

pub async fn load_template(ctx: &Context, reference: &str) -> Result<Template, ToolError> {
    let (ns, name) = templates::parse_ref(reference, &ctx.namespace);
    let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .get(&name)
        .await?;
    templates::from_config_map(&cm).map_err(|e| ToolError::bad_input(e.to_string()))
}

/// What `spawn_workspace` was asked.
pub struct SpawnRequest {
    pub id: String,
    pub namespace: Option<String>,
    pub template_ref: Option<String>,
    pub spec: Option<Value>,
    pub annotations: BTreeMap<String, String>,
    pub context: BTreeMap<String, String>,
    pub wait: bool,
    pub wait_timeout: Duration,
}

fn spawn_outcome(
    ctx: &Context,
    id: &WorkspaceId,
    pod: &Pod,
    existing: bool,
    ready: bool,
) -> Outcome {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let url = workspace_url(ctx, id);
    let verb = if existing {
        "Workspace already exists"
    } else {
        "Spawned workspace"
    };
    let mut text = format!("{verb} {id} (Pod: {name})");
    if let Some(u) = &url {
        text.push_str(&format!("\nURL: {u}"));
    }
    Outcome {
        text,
        structured: json!({
            "id": id.to_string(),
            "podName": name,
            "namespace": pod.metadata.namespace,
            "url": url,
            "status": if ready { "ready" } else { "pending" },
            "existing": existing,
        }),
    }
}

/// Spawns a workspace, or returns the existing one with this id. An id is unique per
/// namespace whoever asks: someone else's workspace is neither returned nor duplicated.
pub async fn spawn(
    ctx: &Context,
    req: SpawnRequest,
    who: &Caller,
    progress: &Progress,
) -> Result<Outcome, ToolError> {
    let id = parse_id(&req.id)?;
    let ns = ctx.namespace_for(req.namespace.as_deref())?;
    // One spawn per id at a time in this process, so two concurrent calls make one pod.
    let _guard = ctx.spawn_lock(&ns, &id).await;
    if let Some(pod) = find(ctx, &ns, &id).await?.into_iter().next() {
        if !who.may_access(&pod) {
            return Err(ToolError {
                code: 409,
                message: format!(
                    "workspace id {id} is already in use in namespace {ns}; choose another id"
                ),
            });
        }
        let ready = !req.wait
            || wait_routable(ctx, &id, &pod, req.wait_timeout, progress)
                .await
                .is_ok();
        return Ok(spawn_outcome(ctx, &id, &pod, true, ready));
    }
    let (spec, annotations, template) = match (&req.template_ref, &req.spec) {
        (Some(r), _) => {
            let t = load_template(ctx, r).await?;
            (t.spec, t.annotations, Some(t.name))
        }
        (None, Some(spec)) => (
            templates::parse_spec(spec).map_err(|e| ToolError::bad_input(e.to_string()))?,
            req.annotations.clone(),
            None,
        ),
        (None, None) => {
            return Err(ToolError::bad_input(
                "Either templateRef or spec must be provided",
            ));
        }
    };
    let plan = spawner::plan(SpawnInput {
        id: &id,
        namespace: &ns,
        spec,
        annotations,
        context: req.context,
        owner: who.owner(),
        template: template.as_deref(),
    })
    .map_err(|e| ToolError::bad_input(e.to_string()))?;
    // The whole planned pod (the spawner's own containers included) meets the standard.
    if let Some(spec) = &plan.pod.spec {
        let violations = pod_security::check(spec, ctx.pod_security);
        if !violations.is_empty() {
            return Err(ToolError::bad_input(format!(
                "the workspace pod {}",
                pod_security::describe(ctx.pod_security, &violations)
            )));
        }
    }

    progress
        .report(1, SPAWN_STEPS, format!("creating workspace {id}"))
        .await;
    let mut created_sa = false;
    if let Some(sa) = &plan.service_account {
        let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
        match sas.create(&PostParams::default(), sa).await {
            Ok(_) => created_sa = true,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Reuse only a service account the spawner made for this workspace id.
                let existing = sas.get(&spawner::service_account_name(&id)).await?;
                let labels = existing.metadata.labels.unwrap_or_default();
                if labels.get(names::WORKSPACE_ID_LABEL) != Some(&id.to_string())
                    || labels.get(names::MANAGED_BY_LABEL).map(String::as_str)
                        != Some(names::MANAGED_BY_SPAWNER)
                {
                    return Err(ToolError {
                        code: 409,
                        message: format!(
                            "ServiceAccount {} exists and does not belong to workspace {id}",
                            spawner::service_account_name(&id)
                        ),
                    });
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod = match pods.create(&PostParams::default(), &plan.pod).await {
        Ok(p) => p,
        Err(e) => {
            // Nothing half-created is left behind.
            if created_sa {
                let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
                let _ = sas
                    .delete(
                        &spawner::service_account_name(&id),
                        &DeleteParams::default(),
                    )
                    .await;
            }
            return Err(e.into());
        }
    };
    progress
        .report(
            2,
            SPAWN_STEPS,
            format!(
                "pod {} created; waiting for it to run",
                pod.metadata.name.as_deref().unwrap_or_default()
            ),
        )
        .await;
    if req.wait {
        wait_routable(ctx, &id, &pod, req.wait_timeout, progress).await?;
    }
    Ok(spawn_outcome(ctx, &id, &pod, false, req.wait))
}

/// Waits until the pod's route is Ready in the published table and every connected
/// gateway has applied it, so the first request to the URL succeeds.
/// Progress steps of a spawn: created, pod running, route applied everywhere.
const SPAWN_STEPS: u32 = 4;

async fn wait_routable(
    ctx: &Context,
    id: &WorkspaceId,
    pod: &Pod,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), ToolError> {
    match wait_routable_for(ctx, id, pod, timeout, progress).await {
        Err(mut e) if e.code == 504 => {
            // Say why, as far as the pod tells: the agent can act on "image pull failed"
            // or "no free address", not on "not ready".
            if let Some(why) = why_not_ready(ctx, pod).await {
                e.message.push_str(&format!("; {why}"));
            }
            Err(e)
        }
        other => other,
    }
}

/// The pod's phase and its containers' waiting or terminated reasons, in a line.
async fn why_not_ready(ctx: &Context, pod: &Pod) -> Option<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or(&ctx.namespace);
    let name = pod.metadata.name.as_deref()?;
    let now = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let status = now.status?;
    let mut parts = vec![format!(
        "pod {name} is {}",
        status.phase.as_deref().unwrap_or("Unknown")
    )];
    for c in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        let state = c.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            parts.push(format!(
                "{}: {} {}",
                c.name,
                w.reason.as_deref().unwrap_or("waiting"),
                w.message
                    .as_deref()
                    .map(|m| format!("({m})"))
                    .unwrap_or_default()
            ));
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            parts.push(format!(
                "{}: exited {} {}",
                c.name,
                t.exit_code,
                t.reason.as_deref().unwrap_or_default()
            ));
        }
    }
    Some(parts.join("; ").trim().to_string())
}

async fn wait_routable_for(
    ctx: &Context,
    id: &WorkspaceId,
    pod: &Pod,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), ToolError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || ToolError {
        code: 504,
        message: format!(
            "workspace {id} was not ready within {}s (it keeps starting; call spawn_workspace again to wait more)",
            timeout.as_secs()
        ),
    };
    let Some(publisher) = &ctx.publisher else {
        // No route publisher (a library user): wait for the pod itself to be Ready.
        let pods: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or(&ctx.namespace),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        loop {
            let ready = pods.get_opt(&name).await?.is_some_and(|p| {
                crate::routes::route_for_pod(&p, shared::names::DEFAULT_WORKSPACE_PORT)
                    .is_some_and(|r| r.state == RouteState::Ready)
            });
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(timed_out());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut versions = publisher.subscribe_versions();
    let version = loop {
        let table = publisher.table();
        if table
            .get(id)
            .is_some_and(|r| r.pod_uid == uid && r.state == RouteState::Ready)
        {
            break table.version();
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Err(timed_out()),
            changed = versions.changed() => if changed.is_err() { return Err(timed_out()) },
        }
    };
    let gateways = publisher.gateways().len();
    progress
        .report(
            3,
            SPAWN_STEPS,
            format!("pod ready; waiting for {gateways} gateway(s) to apply its route"),
        )
        .await;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    publisher
        .wait_applied(version, left)
        .await
        .map_err(|_| timed_out())?;
    progress
        .report(4, SPAWN_STEPS, format!("workspace {id} is routable"))
        .await;
    Ok(())
}

pub async fn stop(
    ctx: &Context,
    id: &str,
    namespace: Option<&str>,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    let id = parse_id(id)?;
    let ns = ctx.namespace_for(namespace)?;
    // Someone else's workspace looks exactly like a missing one.
    let found: Vec<Pod> = find(ctx, &ns, &id)
        .await?
        .into_iter()
        .filter(|p| who.may_access(p))
        .collect();
    if found.is_empty() {
        return Err(ToolError {
            code: 404,
            message: format!("Workspace {id} not found or access denied"),
        });
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut names = Vec::new();
    for pod in &found {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match pods.delete(&name, &DeleteParams::default()).await {
            Ok(_) => names.push(name),
            Err(kube::Error::Api(s)) if s.code == 404 => names.push(name),
            Err(e) => return Err(e.into()),
        }
    }
    // The IAM service account goes with its workspace (the original leaked it).
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    if let Ok(sa) = sas.get(&spawner::service_account_name(&id)).await {
        let managed = sa.metadata.labels.as_ref().is_some_and(|l| {
            l.get(names::MANAGED_BY_LABEL).map(String::as_str) == Some(names::MANAGED_BY_SPAWNER)
                && l.get(names::WORKSPACE_ID_LABEL) == Some(&id.to_string())
        });
        if managed {
            let _ = sas
                .delete(
                    &spawner::service_account_name(&id),
                    &DeleteParams::default(),
                )
                .await;
        }
    }
    Ok(Outcome {
        text: format!("Stopped workspace {id} (Pod: {})", names.join(", ")),
        structured: json!({"id": id.to_string(), "status": "terminating"}),
    })
}

/// The caller's workspaces (everyone's with auth off or over stdio).
pub async fn list(
    ctx: &Context,
    namespace: Option<&str>,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(namespace)?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut selector = workspace_selector(None);
    if let Some(sub) = who.restricted_to() {
        // The label narrows the list on the server; the exact check is the annotation.
        selector.push_str(&format!(
            ",{}={}",
            names::USER_SUB_LABEL,
            spawner::owner_label(sub)
        ));
    }
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let rows: Vec<Value> = list
        .items
        .iter()
        .filter(|p| who.may_access(p))
        .map(|p| {
            let id = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(names::WORKSPACE_ID_LABEL))
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            let status = if p.metadata.deletion_timestamp.is_some() {
                "Terminating".to_string()
            } else {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Unknown".into())
            };
            let url = WorkspaceId::parse(&id)
                .ok()
                .and_then(|w| workspace_url(ctx, &w));
            let template = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(names::TEMPLATE_NAME_LABEL));
            let last_activity = ctx.publisher.as_ref().and_then(|publisher| {
                let wid = WorkspaceId::parse(&id).ok()?;
                publisher
                    .activity()
                    .last_active(&wid, p.metadata.uid.as_deref()?)
                    .map(crate::activity::rfc3339)
            });
            json!({
                "id": id, "name": p.metadata.name, "status": status, "url": url,
                "lastActivity": last_activity,
                "owner": caller::owner_of(p), "template": template,
                "createdAt": p.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
            })
        })
        .collect();
    let mut text = String::from("ID\tNAME\tSTATUS");
    if rows.is_empty() {
        text = "(no workspaces)".into();
    }
    for r in &rows {
        text.push_str(&format!(
            "\n{}\t{}\t{}",
            r["id"].as_str().unwrap_or("-"),
            r["name"].as_str().unwrap_or("-"),
            r["status"].as_str().unwrap_or("-")
        ));
    }
    Ok(Outcome {
        text,
        structured: json!({"workspaces": rows}),
    })
}

pub async fn list_templates(ctx: &Context, namespace: Option<&str>) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(namespace)?;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let list = cms
        .list(&ListParams::default().labels(&format!("{}=true", names::POD_TEMPLATE_LABEL)))
        .await?;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for cm in &list.items {
        match templates::from_config_map(cm) {
            Ok(t) => rows.push(json!({
                "name": t.name, "namespace": t.namespace, "description": t.description().unwrap_or_default(),
                "tag": t.tag().unwrap_or_default(), "requiredContext": templates::required_context(&t.annotations),
            })),
            Err(e) => {
                tracing::warn!(template = ?cm.metadata.name, error = %e, "skipping an invalid template");
                skipped.push(json!({"name": cm.metadata.name, "error": e.to_string()}));
            }
        }
    }
    let mut text = if rows.is_empty() {
        "(no templates)".to_string()
    } else {
        String::new()
    };
    for r in &rows {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "{}\t{}",
            r["name"].as_str().unwrap_or_default(),
            r["description"].as_str().unwrap_or_default()
        ));
    }
    for s in &skipped {
        text.push_str(&format!(
            "\n(skipped invalid template {}: {})",
            s["name"].as_str().unwrap_or_default(),
            s["error"].as_str().unwrap_or_default()
        ));
    }
    Ok(Outcome {
        text,
        structured: json!({"templates": rows, "skipped": skipped}),
    })
}

pub async fn get_template(
    ctx: &Context,
    name: &str,
    namespace: Option<&str>,
) -> Result<Outcome, ToolError> {
    let ns = ctx.namespace_for(namespace)?;
    let t = load_template(ctx, &format!("{ns}/{name}")).await?;
    let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .get(name)
        .await?;
    let spec: Value = cm
        .data
        .as_ref()
        .and_then(|d| d.get("spec"))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    Ok(Outcome {
        text: serde_json::to_string_pretty(&spec).unwrap_or_default(),
        structured: json!({
            "name": t.name, "namespace": t.namespace, "description": t.description().unwrap_or_default(),
            "tag": t.tag().unwrap_or_default(), "spec": spec, "requiredContext": templates::required_context(&t.annotations),
        }),
    })
}
