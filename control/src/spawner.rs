//! The spawner's plan: template (or inline spec) + context + identity → the workspace pod
//! (and its IAM service account). Pure, so every annotation's effect is unit-tested.
//!
//! Follows the original v0.2.0 (`applySpawnerAnnotations`), fixing its weak spots: empty
//! required-context entries are ignored, context env replaces same-named env instead of
//! duplicating it, a bad grace period is an error naming the annotation, template
//! annotations reach the pod (so `nogoo9/workspace-port` works), and the owner label is
//! always a valid label value (the exact subject is in the annotation).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, ExecAction, Lifecycle, LifecycleHandler, Pod, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use shared::ids::WorkspaceId;
use shared::names;

use crate::templates::{TemplateSpec, required_context};

/// Grace period when a pre-stop command is set and the template names none.
pub const DEFAULT_PRE_STOP_GRACE_SECONDS: i64 = 60;

/// Everything a spawn is made from.
pub struct SpawnInput<'a> {
    pub id: &'a WorkspaceId,
    pub namespace: &'a str,
    pub spec: TemplateSpec,
    /// The template's annotations (or the inline `annotations` argument).
    pub annotations: BTreeMap<String, String>,
    pub context: BTreeMap<String, String>,
    /// The verified subject, or `None` when authentication is off.
    pub owner: Option<&'a str>,
    pub template: Option<&'a str>,
}

/// What to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub pod: Pod,
    pub service_account: Option<ServiceAccount>,
}

/// The env vars the spawner sets itself (from what it knows, never from context).
pub const OWNER_ENV: &str = "NOGOO9_OWNER";
pub const WORKSPACE_ID_ENV: &str = "NOGOO9_WORKSPACE_ID";
/// Context keys may not start with this: the spawner's own env vars do.
pub const RESERVED_ENV_PREFIX: &str = "NOGOO9_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    #[error("Missing required context variables: {}", .0.join(", "))]
    MissingContext(Vec<String>),
    #[error("context keys {} are reserved: the spawner sets NOGOO9_* variables itself", .0.join(", "))]
    ReservedContext(Vec<String>),
    #[error("annotation {name} must be a whole number of seconds, got {value:?}")]
    BadAnnotation { name: &'static str, value: String },
    #[error("annotation {name} must be {expected}, got {value:?}")]
    BadChoice {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// The gateway's serving annotations, checked before anything is created (the route
/// reads them from the pod).
fn check_serving(a: &BTreeMap<String, String>) -> Result<(), SpawnError> {
    /// An annotation, what it must be (in words), and the check.
    type Choice = (&'static str, &'static str, fn(&str) -> bool);
    let checks: [Choice; 2] = [
        (
            names::REWRITE_RESPONSES_ANNOTATION,
            "\"true\" or \"false\"",
            |v| matches!(v, "true" | "false"),
        ),
        (
            names::UPSTREAM_HOST_ANNOTATION,
            "\"public\" or \"pod\"",
            |v| shared::route::UpstreamHost::parse(v).is_some(),
        ),
    ];
    for (name, expected, ok) in checks {
        if let Some(v) = a.get(name)
            && !ok(v)
        {
            return Err(SpawnError::BadChoice {
                name,
                value: v.clone(),
                expected,
            });
        }
    }
    Ok(())
}

/// The owner as a label value: the subject itself when it is a valid label value,
/// otherwise `u-` and a 64-bit hash of it (selection only; ownership is checked against
/// the exact subject in the annotation).
pub fn owner_label(sub: &str) -> String {
    let valid = !sub.is_empty()
        && sub.len() <= 63
        && sub
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && sub.starts_with(|c: char| c.is_ascii_alphanumeric())
        && sub.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        return sub.to_string();
    }
    let h = shared::hash::fnv1a(sub.as_bytes());
    format!("u-{h:016x}")
}

/// `ws-<first 10 of the subject's [a-z0-9-]>-<id>`, as the original names pods (lower-cased,
/// so the name is always a valid DNS subdomain).
pub fn pod_name(owner: Option<&str>, id: &WorkspaceId) -> String {
    let sub = owner.unwrap_or("anonymous").to_ascii_lowercase();
    let clean: String = sub
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(10)
        .collect();
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "user" } else { clean };
    format!("ws-{clean}-{id}")
}

pub fn service_account_name(id: &WorkspaceId) -> String {
    format!("ws-sa-{id}")
}

fn shell(command: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), command.into()]
}

fn pre_stop(command: &str) -> Lifecycle {
    Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(shell(command)),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn plan(input: SpawnInput<'_>) -> Result<Plan, SpawnError> {
    let a = &input.annotations;
    let missing: Vec<String> = required_context(a)
        .into_iter()
        .filter(|k| !input.context.contains_key(k))
        .collect();
    if !missing.is_empty() {
        return Err(SpawnError::MissingContext(missing));
    }
    let reserved: Vec<String> = input
        .context
        .keys()
        .filter(|k| k.to_ascii_uppercase().starts_with(RESERVED_ENV_PREFIX))
        .cloned()
        .collect();
    if !reserved.is_empty() {
        return Err(SpawnError::ReservedContext(reserved));
    }
    check_serving(a)?;
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..Default::default()
    };
    // The owner as a label-safe value (the subject itself when it is one), so a hook can
    // use it in a path: per-user backup prefixes come from here, never from context.
    let owner_value = owner_label(input.owner.unwrap_or("anonymous"));
    let env: Vec<EnvVar> = [
        var(OWNER_ENV, &owner_value),
        var(WORKSPACE_ID_ENV, input.id.as_str()),
    ]
    .into_iter()
    .chain(input.context.iter().map(|(k, v)| var(k, v)))
    .collect();
    let mut spec = input.spec.pod;
    let main_mounts = spec
        .containers
        .first()
        .and_then(|c| c.volume_mounts.clone());

    if let (Some(image), Some(command), false) = (
        a.get(names::INIT_IMAGE_ANNOTATION),
        a.get(names::INIT_COMMAND_ANNOTATION),
        spec.containers.is_empty(),
    ) {
        spec.init_containers
            .get_or_insert_with(Vec::new)
            .push(Container {
                name: "spawner-init".into(),
                image: Some(image.clone()),
                command: Some(shell(command)),
                volume_mounts: main_mounts.clone(),
                env: Some(env.clone()),
                ..Default::default()
            });
    }
    if let Some(command) = a.get(names::PRE_STOP_COMMAND_ANNOTATION) {
        match a.get(names::PRE_STOP_SIDECAR_IMAGE_ANNOTATION) {
            Some(image) => spec.containers.push(Container {
                name: "spawner-sidecar".into(),
                image: Some(image.clone()),
                command: Some(shell("sleep infinity")),
                volume_mounts: main_mounts.clone(),
                env: Some(env.clone()),
                lifecycle: Some(pre_stop(command)),
                ..Default::default()
            }),
            None => {
                if let Some(main) = spec.containers.first_mut() {
                    main.lifecycle.get_or_insert_with(Default::default).pre_stop =
                        pre_stop(command).pre_stop;
                }
            }
        }
        let grace =
            match a.get(names::DEFAULT_GRACE_PERIOD_ANNOTATION) {
                Some(v) => v.trim().parse::<u32>().map(i64::from).map_err(|_| {
                    SpawnError::BadAnnotation {
                        name: names::DEFAULT_GRACE_PERIOD_ANNOTATION,
                        value: v.clone(),
                    }
                })?,
                None => DEFAULT_PRE_STOP_GRACE_SECONDS,
            };
        spec.termination_grace_period_seconds = Some(grace);
    }
    if let Some(main) = spec.containers.first_mut() {
        let mut merged: Vec<EnvVar> = main
            .env
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                !input.context.contains_key(&e.name)
                    && e.name != OWNER_ENV
                    && e.name != WORKSPACE_ID_ENV
            })
            .collect();
        merged.extend(env.iter().cloned());
        main.env = (!merged.is_empty()).then_some(merged);
    }

    let mut labels = input.spec.labels;
    labels.insert(names::TYPE_LABEL.into(), names::TYPE_WORKSPACE.into());
    labels.insert(names::WORKSPACE_ID_LABEL.into(), input.id.to_string());
    labels.insert(
        names::MANAGED_BY_LABEL.into(),
        names::MANAGED_BY_SPAWNER.into(),
    );
    labels.insert(names::USER_SUB_LABEL.into(), owner_value.clone());
    if let Some(t) = input.template {
        labels.insert(names::TEMPLATE_NAME_LABEL.into(), owner_label(t));
    }
    let mut annotations = input.annotations.clone();
    annotations.extend(input.spec.annotations);
    match input.owner {
        Some(sub) => annotations.insert(names::USER_SUB_ANNOTATION.into(), sub.into()),
        None => annotations.remove(names::USER_SUB_ANNOTATION),
    };

    let service_account = a.get(names::IAM_ROLE_ARN_ANNOTATION).map(|arn| {
        let mut sa_annotations =
            BTreeMap::from([(names::EKS_ROLE_ARN_ANNOTATION.to_string(), arn.clone())]);
        if let Some(sub) = input.owner {
            sa_annotations.insert(names::USER_SUB_ANNOTATION.into(), sub.into());
        }
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some(service_account_name(input.id)),
                namespace: Some(input.namespace.into()),
                labels: Some(BTreeMap::from([
                    (names::WORKSPACE_ID_LABEL.to_string(), input.id.to_string()),
                    (
                        names::MANAGED_BY_LABEL.to_string(),
                        names::MANAGED_BY_SPAWNER.to_string(),
                    ),
                    (names::USER_SUB_LABEL.to_string(), owner_value.clone()),
                ])),
                annotations: Some(sa_annotations),
                ..Default::default()
            },
            ..Default::default()
        }
    });
    if service_account.is_some() {
        spec.service_account_name = Some(service_account_name(input.id));
    }
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(input.owner, input.id)),
            namespace: Some(input.namespace.into()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    Ok(Plan {
        pod,
        service_account,
    })
}

#[cfg(test)]
mod tests;
