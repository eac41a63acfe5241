//! Who is calling a tool. Identity comes only from the transport: over HTTP with auth
//! on, the token the middleware verified; the original's `jwtPayload` argument is never
//! trusted then (it let any caller claim any identity).

use k8s_openapi::api::core::v1::Pod;
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use shared::auth::Identity;
use shared::names;

use crate::context::Context;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Auth is off: anyone may do anything; `jwtPayload.sub` may name an owner
    /// (the original's behaviour, harmless without auth).
    Anyone { claimed_sub: Option<String> },
    /// Auth is on but the call came over stdio: the local operator who started the
    /// process, unrestricted and with no identity of their own.
    Operator,
    /// Auth is on: this verified identity, restricted to its own workspaces.
    User(Identity),
}

impl Caller {
    /// The caller of one tool call.
    pub fn of(
        ctx: &Context,
        rc: &RequestContext<RoleServer>,
        jwt_payload: Option<&serde_json::Value>,
    ) -> Caller {
        if ctx.auth.is_none() {
            let claimed_sub = jwt_payload
                .and_then(|p| p.get("sub"))
                .and_then(|s| match s {
                    serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
            return Caller::Anyone { claimed_sub };
        }
        let verified = rc
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Identity>())
            .cloned();
        match verified {
            Some(id) => Caller::User(id),
            // Over HTTP the middleware refuses requests without a valid token, so
            // a missing identity means the stdio transport.
            None => Caller::Operator,
        }
    }

    /// The owner a workspace spawned by this caller gets.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Caller::Anyone { claimed_sub } => claimed_sub.as_deref(),
            Caller::Operator => None,
            Caller::User(id) => Some(&id.sub),
        }
    }

    /// The identity whose workspaces alone this caller may see and touch.
    pub fn restricted_to(&self) -> Option<&str> {
        match self {
            Caller::User(id) => Some(&id.sub),
            _ => None,
        }
    }

    /// Whether this caller may see and act on this pod: everyone may with auth off or
    /// over stdio; a user only on their own workspace pods (pods that are not
    /// workspaces are the operators' business and stay visible, as in the original).
    pub fn may_access(&self, pod: &Pod) -> bool {
        let Some(sub) = self.restricted_to() else {
            return true;
        };
        let meta = &pod.metadata;
        let is_workspace = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(names::TYPE_LABEL))
            .is_some_and(|t| t == names::TYPE_WORKSPACE);
        !is_workspace || owner_of(pod) == Some(sub)
    }
}

/// A workspace pod's owner: the exact subject in the annotation.
pub fn owner_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::USER_SUB_ANNOTATION))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: serde_json::Value, annotations: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "labels": labels, "annotations": annotations}}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn users_see_only_their_own_workspaces() {
        let alice = Caller::User(Identity {
            sub: "alice".into(),
            expires_at: u64::MAX,
        });
        let ws = |owner: &str| {
            pod(
                json!({"nogoo9/type": "workspace"}),
                json!({"nogoo9/user-sub": owner}),
            )
        };
        assert!(alice.may_access(&ws("alice")));
        assert!(!alice.may_access(&ws("bob")));
        assert!(!alice.may_access(&pod(json!({"nogoo9/type": "workspace"}), json!({}))));
        assert!(
            alice.may_access(&pod(json!({"app": "x"}), json!({}))),
            "plain pods stay visible"
        );
        assert!(Caller::Operator.may_access(&ws("bob")));
        assert!(Caller::Anyone { claimed_sub: None }.may_access(&ws("bob")));
        assert_eq!(alice.owner(), Some("alice"));
        assert_eq!(Caller::Operator.owner(), None);
        assert_eq!(
            Caller::Anyone {
                claimed_sub: Some("x".into())
            }
            .owner(),
            Some("x")
        );
    }
}
