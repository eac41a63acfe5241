//! The authorization policy, in one place: what each role may do with each tool, where a
//! user's pods live, which templates a user reads, and what a user's pod spec may hold
//! (`policy/spec.rs`). Every tool call, spawn and template read asks here; the domain
//! modules never decide access on their own.
//!
//! | rule | admin | user |
//! |---|---|---|
//! | `Everyone` | yes | yes (sees their role) |
//! | `AdminOnly` | yes | no: 403 naming the tool |
//! | `OwnPods` | any pod, any namespace the server may use | only pods they own, only in the workspace namespace |
//! | `OwnWorkspaces` | every workspace | only their own, only in the workspace namespace |
//! | `ReadTemplates` | templates in any namespace the server may use | only the template namespace (`--namespace`) |
//!
//! Someone else's pod or workspace answers exactly like a missing one ([`not_found`]).

pub mod spec;

use crate::caller::{Caller, Role};
use crate::config::Mode;
use crate::context::Context;
use crate::outcome::ToolError;

/// What each role may do with a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Everyone,
    AdminOnly,
    OwnPods,
    OwnWorkspaces,
    ReadTemplates,
}

/// Every tool's rule (a test checks that the catalogue and this table agree).
pub const RULES: &[(&str, Rule)] = &[
    ("current_namespace", Rule::Everyone),
    ("check_permissions", Rule::Everyone),
    ("list_pods", Rule::OwnPods),
    ("get_pod", Rule::OwnPods),
    ("create_pod", Rule::OwnPods),
    ("patch_pod", Rule::OwnPods),
    ("create_pod_from_template", Rule::OwnPods),
    ("delete_pod", Rule::OwnPods),
    ("get_pod_logs", Rule::OwnPods),
    ("list_namespaces", Rule::AdminOnly),
    ("list_registry_images", Rule::AdminOnly),
    ("list_templates", Rule::ReadTemplates),
    ("get_template", Rule::ReadTemplates),
    ("create_template", Rule::AdminOnly),
    ("update_template", Rule::AdminOnly),
    ("delete_template", Rule::AdminOnly),
    ("spawn_workspace", Rule::OwnWorkspaces),
    ("stop_workspace", Rule::OwnWorkspaces),
    ("keepalive_workspace", Rule::OwnWorkspaces),
    ("resume_workspace", Rule::OwnWorkspaces),
    ("list_workspaces", Rule::OwnWorkspaces),
];

/// A tool's rule (unknown tools are for administrators).
pub fn rule(tool: &str) -> Rule {
    RULES
        .iter()
        .find(|(t, _)| *t == tool)
        .map_or(Rule::AdminOnly, |(_, r)| *r)
}

/// Whether `who` may call `tool` at all.
pub fn may_call(who: &Caller, tool: &str) -> Result<(), ToolError> {
    if who.role() == Role::User && rule(tool) == Rule::AdminOnly {
        return Err(ToolError::forbidden(format!(
            "{tool} is for administrators; your role is user"
        )));
    }
    Ok(())
}

/// Whether `tool` is listed for `who` (users are not shown what they cannot call).
pub fn listed_for(who: &Caller, tool: &str) -> bool {
    may_call(who, tool).is_ok()
}

/// The namespace a workspace operation of `who` acts in: an administrator's request
/// (checked; pinned in namespaced mode), else the workspace namespace; a user always
/// acts in the workspace namespace, and naming another is refused.
pub fn workspace_namespace(
    ctx: &Context,
    who: &Caller,
    requested: Option<&str>,
) -> Result<String, ToolError> {
    match (who.role(), requested) {
        (Role::Admin, None) => Ok(ctx.workspace_namespace.clone()),
        (Role::Admin, Some(_)) => ctx.namespace_for(requested),
        (Role::User, _) => users_namespace(ctx, requested),
    }
}

/// The namespace a pod tool of `who` acts in: an administrator's request, else the
/// server's default namespace; a user's as for workspaces.
pub fn pod_namespace(
    ctx: &Context,
    who: &Caller,
    requested: Option<&str>,
) -> Result<String, ToolError> {
    match who.role() {
        Role::Admin => ctx.namespace_for(requested),
        Role::User => users_namespace(ctx, requested),
    }
}

fn users_namespace(ctx: &Context, requested: Option<&str>) -> Result<String, ToolError> {
    match requested {
        Some(ns) if ns != ctx.workspace_namespace => Err(ToolError::forbidden(format!(
            "namespace {ns:?}: users work only in namespace {}",
            ctx.workspace_namespace
        ))),
        _ => Ok(ctx.workspace_namespace.clone()),
    }
}

/// The namespace `who` reads templates from: a user only the template namespace
/// (`--namespace`); an administrator any the server may use (pinned in namespaced mode).
pub fn template_namespace(
    ctx: &Context,
    who: &Caller,
    requested: Option<&str>,
) -> Result<String, ToolError> {
    match (who.role(), requested) {
        (Role::User, Some(ns)) if ns != ctx.namespace => Err(ToolError::forbidden(format!(
            "namespace {ns:?}: templates are read from namespace {}",
            ctx.namespace
        ))),
        (Role::User, _) => Ok(ctx.namespace.clone()),
        (Role::Admin, _) => ctx.namespace_for(requested),
    }
}

/// A template reference (`pod-template://ns/name`, `ns/name` or `name`) as `who` may
/// read it: `(namespace, name)`, both checked.
pub fn template_ref(
    ctx: &Context,
    who: &Caller,
    reference: &str,
) -> Result<(String, String), ToolError> {
    let (ns, name) = crate::templates::parse_ref(reference, &ctx.namespace);
    let requested = (ns != ctx.namespace).then_some(ns.as_str());
    if ctx.mode == Mode::Namespaced && requested.is_some() {
        return Err(ToolError::forbidden(format!(
            "template {reference:?}: this server reads templates only from namespace {} (namespaced mode)",
            ctx.namespace
        )));
    }
    let ns = template_namespace(ctx, who, requested)?;
    crate::valid::object(&name, "template")?;
    Ok((ns, name))
}

/// The one answer for a pod that is missing or not the caller's: the same status and
/// the same words, so nobody learns which of the two it was.
pub fn not_found(kind: &str, name: &str, namespace: &str) -> ToolError {
    ToolError::not_found(format!("{kind} {name} not found in namespace {namespace}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_tool_has_a_rule() {
        for tool in crate::tools::TOOLS {
            assert!(
                RULES.iter().any(|(t, _)| *t == tool.name),
                "{} has no rule",
                tool.name
            );
        }
        assert_eq!(
            RULES.len(),
            crate::tools::TOOLS.len(),
            "no rule for a tool that is gone"
        );
        assert_eq!(rule("made_up"), Rule::AdminOnly);
    }

    #[test]
    fn users_may_not_call_administrators_tools() {
        let user = Caller::Verified {
            identity: shared::auth::Identity::user("u", u64::MAX),
            role: Role::User,
        };
        for tool in [
            "list_namespaces",
            "create_template",
            "update_template",
            "delete_template",
        ] {
            let e = may_call(&user, tool).expect_err(tool);
            assert_eq!(e.code, 403);
            assert!(e.message.contains("administrators"), "{}", e.message);
            assert!(may_call(&Caller::Operator, tool).is_ok());
        }
        assert!(may_call(&user, "spawn_workspace").is_ok());
        assert!(may_call(&user, "list_templates").is_ok());
    }
}
