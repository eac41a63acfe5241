//! Authentication (one bearer token, written into the kubeconfig) and authorization
//! (everything allowed except `--deny VERB:RESOURCE[/SUBRESOURCE][@NAMESPACE]` rules).

use std::str::FromStr;

use super::status::{ApiError, Reason};

/// The user every request authenticates as (shown in Forbidden messages, like a real
/// service account would be).
pub const USER: &str = "system:serviceaccount:default:kube-sim-user";

/// One `--deny` rule. `*` matches any verb or resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    pub verb: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
}

impl FromStr for DenyRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (verb, rest) = s.split_once(':').ok_or_else(|| {
            format!("deny rule {s:?} must look like VERB:RESOURCE[/SUBRESOURCE][@NAMESPACE]")
        })?;
        let (target, namespace) = match rest.split_once('@') {
            Some((t, ns)) if !ns.is_empty() => (t, Some(ns.to_string())),
            Some(_) => return Err(format!("deny rule {s:?} has an empty namespace after '@'")),
            None => (rest, None),
        };
        let (resource, subresource) = match target.split_once('/') {
            Some((r, sub)) if !sub.is_empty() => (r, Some(sub.to_string())),
            Some(_) => {
                return Err(format!(
                    "deny rule {s:?} has an empty subresource after '/'"
                ));
            }
            None => (target, None),
        };
        const VERBS: [&str; 9] = [
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
            "*",
        ];
        if !VERBS.contains(&verb) {
            return Err(format!(
                "deny rule {s:?}: unknown verb {verb:?} (one of {})",
                VERBS.join(", ")
            ));
        }
        if resource.is_empty() {
            return Err(format!("deny rule {s:?} names no resource"));
        }
        Ok(DenyRule {
            verb: verb.into(),
            resource: resource.into(),
            subresource,
            namespace,
        })
    }
}

/// What a request (or a SelfSubjectAccessReview) asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl DenyRule {
    fn matches(&self, a: &Attributes) -> bool {
        (self.verb == "*" || self.verb == a.verb)
            && (self.resource == "*" || self.resource == a.resource)
            && self.subresource.as_deref().unwrap_or("") == a.subresource
            && self.namespace.as_deref().is_none_or(|ns| ns == a.namespace)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    rules: Vec<DenyRule>,
}

impl Authorizer {
    pub fn new(rules: Vec<DenyRule>) -> Self {
        Authorizer { rules }
    }

    /// `None` when allowed; otherwise the reason a SelfSubjectAccessReview reports.
    pub fn denied_by(&self, a: &Attributes) -> Option<String> {
        self.rules.iter().find(|r| r.matches(a)).map(|r| {
            let mut rule = format!("{}:{}", r.verb, r.resource);
            if let Some(sub) = &r.subresource {
                rule.push('/');
                rule.push_str(sub);
            }
            if let Some(ns) = &r.namespace {
                rule.push('@');
                rule.push_str(ns);
            }
            format!("denied by kube-sim rule {rule}")
        })
    }

    /// The 403 the real server answers, worded the same way.
    pub fn check(&self, a: &Attributes) -> Result<(), ApiError> {
        if self.denied_by(a).is_none() {
            return Ok(());
        }
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let target = if a.name.is_empty() {
            String::new()
        } else {
            format!(" \"{}\"", a.name)
        };
        let mut message = format!(
            "{}{} is forbidden: User \"{USER}\" cannot {} resource \"{resource}\" in API group \"{}\"",
            super::status::qualified(&a.resource, &a.group),
            target,
            a.verb,
            a.group
        );
        if a.namespace.is_empty() {
            message.push_str(" at the cluster scope");
        } else {
            message.push_str(&format!(" in the namespace \"{}\"", a.namespace));
        }
        Err(ApiError::new(Reason::Forbidden, message).with_details(&a.resource, &a.group, &a.name))
    }
}

/// Constant-time comparison of the presented bearer token.
pub fn token_matches(header: Option<&str>, token: &str) -> bool {
    let Some(presented) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (presented.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, resource: &str, sub: &str, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: String::new(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: String::new(),
        }
    }

    #[test]
    fn rules_parse_and_match() {
        let rule: DenyRule = "delete:pods@team-a"
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}"));
        let auth = Authorizer::new(vec![
            rule,
            "get:pods/log"
                .parse()
                .unwrap_or_else(|e: String| panic!("{e}")),
        ]);
        assert!(auth.check(&attrs("delete", "pods", "", "team-a")).is_err());
        assert!(auth.check(&attrs("delete", "pods", "", "team-b")).is_ok());
        assert!(auth.check(&attrs("get", "pods", "log", "x")).is_err());
        assert!(auth.check(&attrs("get", "pods", "", "x")).is_ok());
        let err = auth
            .check(&attrs("delete", "pods", "", "team-a"))
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "pods is forbidden: User \"system:serviceaccount:default:kube-sim-user\" cannot delete resource \"pods\" in API group \"\" in the namespace \"team-a\""
            )
        );
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in ["pods", "fly:pods", "get:", "get:pods/", "get:pods@"] {
            assert!(bad.parse::<DenyRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(token_matches(Some("Bearer abc"), "abc"));
        assert!(!token_matches(Some("Bearer abd"), "abc"));
        assert!(!token_matches(Some("abc"), "abc"));
        assert!(!token_matches(None, "abc"));
    }
}
