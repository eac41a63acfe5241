//! Who is calling a tool, and in which role. Identity comes only from the transport:
//! over HTTP with auth on, the token the middleware verified; over stdio, the operator
//! who started the process. The original's `jwtPayload` argument is never trusted when
//! auth is on (it let any caller claim any identity).

use k8s_openapi::api::core::v1::Pod;
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use shared::auth::Identity;

use crate::context::Context;
pub use crate::routes::owner_of;

/// What a caller may do (`policy.rs` says what each role reaches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything the server's Kubernetes identity can do, in every namespace it may use.
    Admin,
    /// Only what they own, in the workspace namespace.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Auth is off: one tenant, an administrator; `jwtPayload.sub` may name an owner
    /// (the original's behaviour, harmless without auth).
    Anyone { claimed_sub: Option<String> },
    /// The stdio transport: the local operator who started the process, an
    /// administrator with no identity of their own.
    Operator,
    /// A verified identity (HTTP with auth on), and its role.
    Verified { identity: Identity, role: Role },
}

/// Whether a tool call arrived over stdio or HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stdio,
    Http,
}

impl Caller {
    /// The caller of one tool call.
    pub fn of(
        ctx: &Context,
        transport: Transport,
        rc: &RequestContext<RoleServer>,
        jwt_payload: Option<&serde_json::Value>,
    ) -> Caller {
        if transport == Transport::Stdio {
            return Caller::Operator;
        }
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
        // With auth on the HTTP middleware refuses requests without a valid token, so
        // the identity is there; were it ever missing, the caller would get nothing
        // beyond a user's reach under an empty subject that owns nothing.
        let identity = rc
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Identity>())
            .cloned()
            .unwrap_or_else(|| Identity::user("", 0));
        Caller::verified(ctx, identity)
    }

    /// A verified identity in the role the configuration gives it.
    pub fn verified(ctx: &Context, identity: Identity) -> Caller {
        let admin = !identity.sub.is_empty()
            && (identity.admin_claim || ctx.admin_subjects.contains(&*identity.sub));
        Caller::Verified {
            role: if admin { Role::Admin } else { Role::User },
            identity,
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Caller::Anyone { .. } | Caller::Operator => Role::Admin,
            Caller::Verified { role, .. } => *role,
        }
    }

    /// The owner a workspace spawned by this caller gets.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Caller::Anyone { claimed_sub } => claimed_sub.as_deref(),
            Caller::Operator => None,
            Caller::Verified { identity, .. } => Some(&identity.sub),
        }
    }

    /// The subject whose pods alone this caller may see and touch (`None`: an
    /// administrator, who reaches everything).
    pub fn restricted_to(&self) -> Option<&str> {
        match self {
            Caller::Verified {
                identity,
                role: Role::User,
            } => Some(&identity.sub),
            _ => None,
        }
    }

    /// The subject, for logs and answers ("signed in as").
    pub fn subject(&self) -> Option<&str> {
        match self {
            Caller::Verified { identity, .. } => Some(&identity.sub),
            _ => None,
        }
    }

    /// Whether this caller may see and act on this pod: administrators on any; a user
    /// only on pods they own (the exact subject in the owner annotation).
    pub fn may_access(&self, pod: &Pod) -> bool {
        match self.restricted_to() {
            None => true,
            Some(sub) => !sub.is_empty() && owner_of(pod) == Some(sub),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: serde_json::Value, annotations: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "labels": labels, "annotations": annotations}}),
        )
        .expect("a pod")
    }

    #[test]
    fn users_reach_only_what_they_own_and_admins_everything() {
        let alice = Caller::Verified {
            identity: Identity::user("alice", u64::MAX),
            role: Role::User,
        };
        let root = Caller::Verified {
            identity: Identity::user("root", u64::MAX),
            role: Role::Admin,
        };
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
            !alice.may_access(&pod(json!({"app": "x"}), json!({}))),
            "pods nobody owns are the administrators'"
        );
        assert!(alice.may_access(&pod(
            json!({"app": "x"}),
            json!({"nogoo9/user-sub": "alice"})
        )));
        for admin in [
            &root,
            &Caller::Operator,
            &Caller::Anyone { claimed_sub: None },
        ] {
            assert!(admin.may_access(&ws("bob")));
            assert_eq!(admin.role(), Role::Admin);
            assert_eq!(admin.restricted_to(), None);
        }
        let nobody = Caller::Verified {
            identity: Identity::user("", 0),
            role: Role::User,
        };
        assert!(!nobody.may_access(&pod(json!({}), json!({"nogoo9/user-sub": ""}))));
        assert_eq!(alice.owner(), Some("alice"));
        assert_eq!(root.owner(), Some("root"));
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
