//! Workspaces against the cluster: spawn (idempotent per id, ids global through
//! `claims`), stop, list. The pure decisions live in `spawner`, `templates` and
//! `policy`; waiting for a spawned workspace in `spawn_wait`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use shared::ids::WorkspaceId;
use shared::names;

use crate::caller::{self, Caller};
use crate::claims::{self, Claim};
use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::progress::Progress;
use crate::spawn_wait::{SPAWN_STEPS, wait_routable};
use crate::spawner::{self, SpawnInput};
use crate::templates::Template;
use crate::{pod_security, policy, template_reads, templates};

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

/// The workspace's URL on the gateway: `<scheme>://<id>.DOMAIN[:port]/` under host
/// routing (scheme and port from `--gateway-url`, else `http` and none), else
/// `<gateway-url>/route/<id>/` when `--gateway-url` is set.
pub fn workspace_url(ctx: &Context, id: &WorkspaceId) -> Option<String> {
    if let Some(domain) = &ctx.workspace_domain {
        let (scheme, port) = ctx
            .gateway_url
            .as_deref()
            .and_then(|u| u.parse::<axum::http::Uri>().ok())
            .map(|u| (u.scheme_str().unwrap_or("http").to_string(), u.port_u16()))
            .unwrap_or(("http".to_string(), None));
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        return Some(format!("{scheme}://{id}.{domain}{port}/"));
    }
    ctx.gateway_url
        .as_ref()
        .map(|base| format!("{}/route/{id}/", base.trim_end_matches('/')))
}

/// Under host routing an id like `8080-app` would be read as port 8080 of `app`.
fn reachable_by_host(ctx: &Context, id: &WorkspaceId) -> Result<(), ToolError> {
    match (&ctx.workspace_domain, id.reads_as_port_form()) {
        (Some(domain), Some(port)) => Err(ToolError::bad_input(format!(
            "workspace id {id} would read as port {port} of another workspace at {id}.{domain}; choose an id that does not start with a port number and '-'"
        ))),
        _ => Ok(()),
    }
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

/// How long a spawn that lost the race for an id waits for the winner's pod (the same
/// owner's other call, perhaps through another replica) to appear.
const WINNER_POD_WAIT: Duration = Duration::from_secs(10);

fn taken(id: &WorkspaceId) -> ToolError {
    ToolError::conflict(format!(
        "workspace id {id} is already taken; choose another id"
    ))
}

/// Whether `who` may have the workspace this claim holds (returned by a spawn, stopped).
fn holds(who: &Caller, claim: &Claim) -> bool {
    match who.restricted_to() {
        None => true,
        Some(sub) => claim.owner.as_deref() == Some(sub),
    }
}

/// The live workspace with this id that `who` may have, if there is one; `taken` if
/// someone else holds the id. Releases a claim whose pod is gone for good.
async fn existing(ctx: &Context, who: &Caller, id: &WorkspaceId) -> Result<Option<Pod>, ToolError> {
    for _ in 0..3 {
        match claims::get(&ctx.client, &ctx.namespace, id).await? {
            Some(claim) => {
                if !holds(who, &claim) {
                    return Err(taken(id));
                }
                // Suspended: spawning it again resumes it, files and context as they were.
                if claim.suspended {
                    return crate::suspend::resume(ctx, &claim, crate::suspend::Why::Resumed)
                        .await
                        .map(Some);
                }
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &claim.namespace);
                let deadline = tokio::time::Instant::now() + WINNER_POD_WAIT;
                loop {
                    match pods.get_opt(&claim.pod).await? {
                        Some(p) if p.metadata.deletion_timestamp.is_none() => return Ok(Some(p)),
                        Some(_) => {
                            return Err(ToolError::conflict(format!(
                                "workspace {id} is stopping; spawn it again in a few seconds"
                            )));
                        }
                        // A claim just made: its spawn is about to create the pod.
                        None if claim_is_young(&claim)
                            && tokio::time::Instant::now() < deadline =>
                        {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        None => break,
                    }
                }
                // The pod never came, or is gone: the claim is stale.
                claims::release(&ctx.client, &ctx.namespace, &claims::release_of(&claim)).await?;
            }
            None => return unclaimed(ctx, who, id).await,
        }
    }
    Err(taken(id))
}

fn claim_is_young(claim: &Claim) -> bool {
    let created = claim
        .created
        .as_deref()
        .and_then(|c| c.parse::<k8s_openapi::jiff::Timestamp>().ok());
    created.is_none_or(|c| {
        k8s_openapi::jiff::Timestamp::now()
            .duration_since(c)
            .as_secs()
            < claims::CLAIM_GRACE.as_secs() as i64
    })
}

/// A live pod with this id that no claim holds (made before claims, or with kubectl).
async fn unclaimed(
    ctx: &Context,
    who: &Caller,
    id: &WorkspaceId,
) -> Result<Option<Pod>, ToolError> {
    let live: Vec<(String, String)> = match &ctx.workspaces {
        Some(index) => index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .live_pods(id)
            .into_iter()
            .map(|p| (p.namespace, p.name))
            .collect(),
        None => find(ctx, &ctx.workspace_namespace, id)
            .await?
            .into_iter()
            .map(|p| {
                (
                    p.metadata.namespace.unwrap_or_default(),
                    p.metadata.name.unwrap_or_default(),
                )
            })
            .collect(),
    };
    let Some((ns, name)) = live.into_iter().next() else {
        return Ok(None);
    };
    match Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await?
    {
        Some(p) if who.may_access(&p) => Ok(Some(p)),
        Some(_) => Err(taken(id)),
        None => Ok(None),
    }
}

/// The planned workspace for this request, every input checked: nothing is created yet.
/// Also the template it comes from, if any (its warm pool may hold the pod already).
async fn plan(
    ctx: &Context,
    req: &SpawnRequest,
    who: &Caller,
    id: &WorkspaceId,
    ns: &str,
) -> Result<(spawner::Plan, Option<Template>), ToolError> {
    let mut source = None;
    let (spec, annotations, template) = match (&req.template_ref, &req.spec) {
        (Some(r), _) => {
            let (_, t) = template_reads::fetch(ctx, who, r).await?;
            source = Some(t.clone());
            (t.spec, t.annotations, Some(t.name))
        }
        (None, Some(spec)) => {
            let mut parsed =
                templates::parse_spec(spec).map_err(|e| ToolError::bad_input(e.to_string()))?;
            if who.restricted_to().is_some() {
                policy::spec::inline_annotations(&req.annotations).map_err(ToolError::forbidden)?;
                for (what, keys) in [
                    ("labels", &parsed.labels),
                    ("annotations", &parsed.annotations),
                ] {
                    let reserved: Vec<&str> = keys
                        .keys()
                        .map(String::as_str)
                        .filter(|k| k.starts_with(crate::pod_writes::RESERVED_PREFIX))
                        .collect();
                    if !reserved.is_empty() {
                        return Err(ToolError::forbidden(format!(
                            "spec {what} {} are reserved for the workspace spawner",
                            reserved.join(", ")
                        )));
                    }
                }
                policy::spec::restrict(&mut parsed.pod, &ctx.workspace_service_account)
                    .map_err(ToolError::forbidden)?;
            }
            (parsed, req.annotations.clone(), None)
        }
        (None, None) => {
            return Err(ToolError::bad_input(
                "Either templateRef or spec must be provided",
            ));
        }
    };
    let plan = spawner::plan(SpawnInput {
        id,
        namespace: ns,
        spec,
        annotations,
        context: req.context.clone(),
        owner: who.owner(),
        template: template.as_deref(),
    })
    .map_err(|e| ToolError::bad_input(e.to_string()))?;
    // Its lifecycle annotations read (a typo would otherwise only show when it is culled).
    let planned = plan.pod.metadata.annotations.clone().unwrap_or_default();
    crate::lifecycle::Policy::of(&planned, ctx.lifecycle).map_err(ToolError::bad_input)?;
    crate::quota::limit_for(&planned, ctx.max_workspaces_per_user).map_err(ToolError::bad_input)?;
    let mut plan = plan;
    if let Some(size) = planned.get(names::VOLUME_SIZE_ANNOTATION) {
        crate::suspend::check_size(size).map_err(ToolError::bad_input)?;
        crate::suspend::use_volume(&mut plan.pod, id).map_err(ToolError::bad_input)?;
    }
    if crate::pool::delivery(&planned).map_err(ToolError::bad_input)? == crate::pool::Delivery::File
    {
        crate::pool::deliver_by_file(&mut plan.pod, Some(&req.context));
    }
    // The whole planned pod (the spawner's own containers included) meets the standard.
    if let Some(spec) = &plan.pod.spec {
        let annotations = plan.pod.metadata.annotations.clone().unwrap_or_default();
        let violations = pod_security::check(spec, &annotations, ctx.pod_security);
        if !violations.is_empty() {
            return Err(ToolError::bad_input(format!(
                "the workspace pod {}",
                pod_security::describe(ctx.pod_security, &violations)
            )));
        }
    }
    Ok((plan, source))
}

/// Spawns a workspace, or returns the existing one with this id. Ids are global: one id
/// is one live workspace across every namespace and replica (`claims.rs`); someone
/// else's id is neither returned nor duplicated, and nothing is created for them.
pub async fn spawn(
    ctx: &Context,
    req: SpawnRequest,
    who: &Caller,
    progress: &Progress,
) -> Result<Outcome, ToolError> {
    let id = parse_id(&req.id)?;
    reachable_by_host(ctx, &id)?;
    let ns = policy::workspace_namespace(ctx, who, req.namespace.as_deref())?;
    // One spawn per id at a time in this process; across replicas, the claim decides.
    let _guard = ctx.spawn_lock(&id).await;
    if let Some(pod) = existing(ctx, who, &id).await? {
        return give_existing(ctx, &req, &id, pod, progress).await;
    }
    let (plan, template) = plan(ctx, &req, who, &id, &ns).await?;
    let claim = Claim {
        id: id.clone(),
        namespace: ns.clone(),
        pod: plan.pod.metadata.name.clone().unwrap_or_default(),
        owner: who.owner().map(str::to_string),
        uid: String::new(),
        created: None,
        rv: String::new(),
        suspended: false,
        wake: plan
            .pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::WAKE_ON_REQUEST_ANNOTATION))
            .is_some_and(|v| v == "true"),
        template: template.as_ref().map(|t| t.name.clone()),
    };
    let claimed = match claims::create(&ctx.client, &ctx.namespace, &claim).await? {
        Some(c) => c,
        // Another call claimed the id first: the same owner gets that workspace.
        None => {
            return match existing(ctx, who, &id).await? {
                Some(pod) => give_existing(ctx, &req, &id, pod, progress).await,
                None => Err(taken(&id)),
            };
        }
    };
    // A user's workspace takes one of their limit's slots (`quota.rs`).
    if let (Some(owner), Some(limit)) = (who.restricted_to(), plan_limit(ctx, &plan)?) {
        let taken = match crate::quota::take(&ctx.client, &ctx.namespace, owner, &id, limit).await {
            Ok(t) => t,
            Err(e) => {
                let _ = claims::release(&ctx.client, &ctx.namespace, &claims::release_of(&claimed))
                    .await;
                return Err(e.into());
            }
        };
        if !taken {
            let _ =
                claims::release(&ctx.client, &ctx.namespace, &claims::release_of(&claimed)).await;
            return Err(ToolError::forbidden(format!(
                "you already have {limit} live workspaces, the most allowed; stop one (stop_workspace) before spawning {id}"
            )));
        }
    }
    progress
        .report(1, SPAWN_STEPS, format!("creating workspace {id}"))
        .await;
    let pooled = from_pool(ctx, &ns, template.as_ref(), &req, &id, who, &claimed).await;
    let from_pool = matches!(pooled, Ok(Some(_)));
    let created = match pooled {
        Ok(Some(pod)) => Ok(pod),
        Ok(None) => create_resources(ctx, &ns, &id, &plan).await,
        Err(e) => Err(e),
    };
    let pod = match created {
        Ok(pod) => pod,
        Err(e) => {
            // Nothing half-created is left behind, the claim included.
            let _ =
                claims::release(&ctx.client, &ctx.namespace, &claims::release_of(&claimed)).await;
            return Err(e);
        }
    };
    crate::events::record(
        &ctx.client,
        &pod,
        crate::events::Type::Normal,
        "Spawned",
        &format!(
            "workspace {id} spawned for {}",
            who.owner().unwrap_or("the operator")
        ),
    )
    .await;
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
        if let Err(e) = wait_routable(ctx, &id, &pod, req.wait_timeout, progress).await {
            crate::events::record(
                &ctx.client,
                &pod,
                crate::events::Type::Warning,
                "Failed",
                &format!("workspace {id} did not become reachable: {}", e.message),
            )
            .await;
            return Err(e);
        }
        crate::events::record(
            &ctx.client,
            &pod,
            crate::events::Type::Normal,
            "Ready",
            &format!("workspace {id} is reachable through every gateway"),
        )
        .await;
    }
    let mut outcome = spawn_outcome(ctx, &id, &pod, false, req.wait);
    outcome.structured["fromPool"] = json!(from_pool);
    Ok(outcome)
}

/// A Ready pod from the template's warm pool, now this workspace's (`pool.rs`), with the
/// id's claim pointing at it; `None`: no pool here or none left, so start one cold.
async fn from_pool(
    ctx: &Context,
    ns: &str,
    template: Option<&Template>,
    req: &SpawnRequest,
    id: &WorkspaceId,
    who: &Caller,
    claimed: &Claim,
) -> Result<Option<Pod>, ToolError> {
    let Some(t) = template else {
        return Ok(None);
    };
    // Pools live in the default workspace namespace, for templates in control's.
    if ns != ctx.workspace_namespace
        || t.namespace != ctx.namespace
        || crate::pool::size(&t.annotations).unwrap_or(0) == 0
    {
        return Ok(None);
    }
    let Some(pod) = crate::pool::claim(ctx, ns, t, id, who.owner(), &req.context).await? else {
        return Ok(None);
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    if let Err(e) = claims::point_at(&ctx.client, &ctx.namespace, claimed, &name).await {
        // The claim could not follow: give the pod back to nobody (deleted) and fail.
        let _ = Api::<Pod>::namespaced(ctx.client.clone(), ns)
            .delete(&name, &DeleteParams::default())
            .await;
        return Err(e.into());
    }
    crate::events::record(
        &ctx.client,
        &pod,
        crate::events::Type::Normal,
        "ClaimedFromPool",
        &format!(
            "workspace {id} took pod {name} from template {}'s warm pool",
            t.name
        ),
    )
    .await;
    Ok(Some(pod))
}

/// The existing workspace as a spawn's answer (waiting for it too, when asked).
async fn give_existing(
    ctx: &Context,
    req: &SpawnRequest,
    id: &WorkspaceId,
    pod: Pod,
    progress: &Progress,
) -> Result<Outcome, ToolError> {
    let ready = !req.wait
        || wait_routable(ctx, id, &pod, req.wait_timeout, progress)
            .await
            .is_ok();
    Ok(spawn_outcome(ctx, id, &pod, true, ready))
}

/// The IAM service account (if planned) and the pod; on failure nothing stays.
async fn create_resources(
    ctx: &Context,
    ns: &str,
    id: &WorkspaceId,
    plan: &spawner::Plan,
) -> Result<Pod, ToolError> {
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    let mut created_sa = false;
    if let Some(sa) = &plan.service_account {
        match sas.create(&PostParams::default(), sa).await {
            Ok(_) => created_sa = true,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Reuse only a service account the spawner made for this workspace id.
                let existing = sas.get(&spawner::service_account_name(id)).await?;
                let labels = existing.metadata.labels.unwrap_or_default();
                if labels.get(names::WORKSPACE_ID_LABEL) != Some(&id.to_string())
                    || labels.get(names::MANAGED_BY_LABEL).map(String::as_str)
                        != Some(names::MANAGED_BY_SPAWNER)
                {
                    return Err(ToolError::conflict(format!(
                        "ServiceAccount {} exists and does not belong to workspace {id}",
                        spawner::service_account_name(id)
                    )));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let size = plan
        .pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::VOLUME_SIZE_ANNOTATION));
    if let Some(size) = size {
        let owner = plan
            .pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::USER_SUB_ANNOTATION));
        if let Err(e) =
            crate::suspend::ensure_volume(ctx, ns, id, owner.map(String::as_str), size).await
        {
            if created_sa {
                let _ = sas
                    .delete(&spawner::service_account_name(id), &DeleteParams::default())
                    .await;
            }
            return Err(e);
        }
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    match pods.create(&PostParams::default(), &plan.pod).await {
        Ok(p) => Ok(p),
        Err(e) => {
            if size.is_some() {
                let _ = crate::suspend::forget(ctx, ns, id).await;
            }
            if created_sa {
                let _ = sas
                    .delete(&spawner::service_account_name(id), &DeleteParams::default())
                    .await;
            }
            Err(match e {
                kube::Error::Api(s) if s.code == 409 => ToolError::conflict(format!(
                    "workspace {id}'s previous pod is still stopping; spawn it again in a few seconds"
                )),
                other => other.into(),
            })
        }
    }
}

/// Stops a workspace: its pod stops gracefully (pre-stop hooks run), its IAM service
/// account goes, and its id is released. Someone else's workspace answers like a
/// missing one.
pub async fn stop(
    ctx: &Context,
    id: &str,
    namespace: Option<&str>,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    let id = parse_id(id)?;
    let ns = policy::workspace_namespace(ctx, who, namespace)?;
    let any_claim = claims::get(&ctx.client, &ctx.namespace, &id).await?;
    let someone_elses = any_claim.as_ref().is_some_and(|c| !holds(who, c));
    let claim = any_claim.filter(|c| holds(who, c) && c.namespace == ns);
    let found: Vec<Pod> = find(ctx, &ns, &id)
        .await?
        .into_iter()
        .filter(|p| who.may_access(p))
        .collect();
    if found.is_empty() && claim.is_none() {
        return Err(policy::not_found("workspace", id.as_str(), &ns));
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut names = Vec::new();
    for pod in &found {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods.delete(&name, &dp).await {
            Ok(_) => names.push(name),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => names.push(name),
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
    // What a suspension kept (its record, its files) goes too: stopped is gone.
    if !someone_elses {
        crate::suspend::forget(ctx, &ns, &id).await?;
    }
    if let Some(claim) = &claim {
        // Whatever changed on the claim since it was read (a suspension), it goes.
        let release = claims::Release {
            rv: String::new(),
            ..claims::release_of(claim)
        };
        claims::release(&ctx.client, &ctx.namespace, &release).await?;
    }
    if names.is_empty() {
        return Ok(Outcome {
            text: format!("Stopped workspace {id} (it was suspended)"),
            structured: json!({"id": id.to_string(), "status": "stopped"}),
        });
    }
    Ok(Outcome {
        text: format!("Stopped workspace {id} (Pod: {})", names.join(", ")),
        structured: json!({"id": id.to_string(), "status": "terminating"}),
    })
}

/// The per-user limit for this spawn (template over server), checked at planning.
fn plan_limit(ctx: &Context, plan: &spawner::Plan) -> Result<Option<u32>, ToolError> {
    let annotations = plan.pod.metadata.annotations.clone().unwrap_or_default();
    crate::quota::limit_for(&annotations, ctx.max_workspaces_per_user).map_err(ToolError::bad_input)
}

/// One word for where a workspace is in its life.
fn state_of(p: &Pod) -> &'static str {
    if p.metadata.deletion_timestamp.is_some() {
        return "stopping";
    }
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => "running",
        Some("Succeeded") => "stopped",
        Some("Failed") => "failed",
        _ => "starting",
    }
}

/// When the workspace was last active (any gateway, or `keepalive_workspace`), its
/// idle timeout and maximum lifetime, and when it will be stopped for either.
fn lifecycle_fields(ctx: &Context, p: &Pod) -> Value {
    let rfc = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| crate::activity::rfc3339(d.as_millis() as u64))
    };
    let annotated = p
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::LAST_ACTIVITY_ANNOTATION))
        .cloned();
    let Ok(s) = crate::standing::standing(ctx, p) else {
        return json!({"lastActivity": annotated, "lifecycleError": true});
    };
    let (cull_at, expires_at) = match s.policy.decide(
        s.started,
        s.last_active,
        std::time::SystemTime::now(),
        ctx.activity_slack,
    ) {
        crate::lifecycle::Verdict::Keep {
            cull_at,
            expires_at,
        } => (cull_at, expires_at),
        crate::lifecycle::Verdict::Stop(_) => (Some(std::time::SystemTime::now()), None),
    };
    json!({
        "lastActivity": s.activity.and_then(rfc),
        "idleTimeout": s.policy.idle_timeout.map(crate::lifecycle::human),
        "maxLifetime": s.policy.max_lifetime.map(crate::lifecycle::human),
        "cullAt": cull_at.and_then(rfc),
        "expiresAt": expires_at.and_then(rfc),
    })
}

/// Marks `id` active now (for agents that work without HTTP traffic): recorded for this
/// replica's culler at once and on the pod, where every replica's culler reads it.
pub async fn keepalive(
    ctx: &Context,
    id: &str,
    namespace: Option<&str>,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    let id = parse_id(id)?;
    let ns = policy::workspace_namespace(ctx, who, namespace)?;
    let pod = find(ctx, &ns, &id)
        .await?
        .into_iter()
        .find(|p| who.may_access(p))
        .ok_or_else(|| policy::not_found("workspace", id.as_str(), &ns))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(publisher) = &ctx.publisher {
        publisher.activity().record(&id, &uid, now_ms);
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    // The UID is a precondition: a different pod with this name is not touched.
    let patch = json!({"metadata": {"uid": uid, "annotations": {
        names::LAST_ACTIVITY_ANNOTATION: crate::activity::rfc3339(now_ms)}}});
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let patched = pods
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    let fields = lifecycle_fields(ctx, &patched);
    Ok(Outcome {
        text: format!(
            "Workspace {id} marked active{}",
            fields["cullAt"]
                .as_str()
                .map(|t| format!("; it will be stopped if idle until {t}"))
                .unwrap_or_default()
        ),
        structured: json!({"id": id.to_string(), "lastActivity": fields["lastActivity"], "cullAt": fields["cullAt"], "expiresAt": fields["expiresAt"]}),
    })
}

/// The caller's workspaces (everyone's with auth off or over stdio).
pub async fn list(
    ctx: &Context,
    namespace: Option<&str>,
    who: &Caller,
) -> Result<Outcome, ToolError> {
    let ns = policy::workspace_namespace(ctx, who, namespace)?;
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
            let lifecycle = lifecycle_fields(ctx, p);
            let mut row = json!({
                "id": id, "name": p.metadata.name, "status": status, "url": url,
                "state": state_of(p),
                "owner": caller::owner_of(p), "template": template,
                "createdAt": p.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
            });
            if let (Value::Object(r), Value::Object(l)) = (&mut row, lifecycle) {
                r.extend(l);
            }
            row
        })
        .collect();
    let mut rows = rows;
    rows.extend(
        suspended_claims(ctx)
            .await?
            .into_iter()
            .filter(|c| c.namespace == ns && holds(who, c))
            .map(|c| {
                json!({
                    "id": c.id.to_string(), "name": Value::Null, "status": "Suspended",
                    "url": workspace_url(ctx, &c.id), "state": "suspended",
                    "owner": c.owner, "wakeOnRequest": c.wake, "template": c.template,
                    // The id's claim was made at the first spawn: the workspace's age.
                    "createdAt": c.created,
                })
            }),
    );
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

/// Suspended workspaces' claims: from the watch's index when this process keeps one,
/// else from the API server.
async fn suspended_claims(ctx: &Context) -> Result<Vec<Claim>, ToolError> {
    if let Some(index) = &ctx.workspaces {
        return Ok(index.lock().unwrap_or_else(|p| p.into_inner()).suspended());
    }
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let list = api
        .list(&ListParams::default().labels(&claims::claim_selector()))
        .await?;
    Ok(list
        .items
        .iter()
        .filter_map(Claim::from_config_map)
        .filter(|c| c.suspended)
        .collect())
}

/// Resumes a suspended workspace: its pod is created again from its record, with its
/// files and context as they were. Someone else's workspace answers like a missing one.
pub async fn resume(
    ctx: &Context,
    id: &str,
    namespace: Option<&str>,
    who: &Caller,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<Outcome, ToolError> {
    let id = parse_id(id)?;
    let ns = policy::workspace_namespace(ctx, who, namespace)?;
    let _guard = ctx.spawn_lock(&id).await;
    let claim = claims::get(&ctx.client, &ctx.namespace, &id)
        .await?
        .filter(|c| holds(who, c) && c.namespace == ns)
        .ok_or_else(|| policy::not_found("workspace", id.as_str(), &ns))?;
    if !claim.suspended {
        return Err(ToolError::conflict(format!(
            "workspace {id} is not suspended; it is already running or starting"
        )));
    }
    let pod = crate::suspend::resume(ctx, &claim, crate::suspend::Why::Resumed).await?;
    let ready = match wait {
        Some(timeout) => {
            wait_routable(ctx, &id, &pod, timeout, progress).await?;
            true
        }
        None => false,
    };
    let mut outcome = spawn_outcome(ctx, &id, &pod, true, ready);
    outcome.text = outcome
        .text
        .replacen("Workspace already exists", "Resumed workspace", 1);
    Ok(outcome)
}
