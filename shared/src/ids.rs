//! Validated identifiers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A workspace id: an RFC 1123 DNS label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, 1–63
/// characters), so it is safe in a URL path segment, a label value and a pod name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspaceId(String);

/// Why a string is not a workspace id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWorkspaceId {
    #[error("a workspace id must not be empty")]
    Empty,
    #[error("a workspace id must be at most 63 characters (got {0})")]
    TooLong(usize),
    #[error(
        "a workspace id may contain only lowercase letters, digits and '-', and must start and end with a letter or digit (got {0:?})"
    )]
    BadCharacters(String),
}

impl WorkspaceId {
    pub fn parse(s: &str) -> Result<Self, InvalidWorkspaceId> {
        if s.is_empty() {
            return Err(InvalidWorkspaceId::Empty);
        }
        if s.len() > 63 {
            return Err(InvalidWorkspaceId::TooLong(s.len()));
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if !ok {
            return Err(InvalidWorkspaceId::BadCharacters(
                s.chars().take(80).collect(),
            ));
        }
        Ok(WorkspaceId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorkspaceId {
    type Error = InvalidWorkspaceId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        WorkspaceId::parse(&s)
    }
}

impl From<WorkspaceId> for String {
    fn from(id: WorkspaceId) -> String {
        id.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl WorkspaceId {
    /// The container port this id would name as a host label (`<port>-<rest>`, port
    /// 1–65535): host routing reads such a label as that port of workspace `<rest>`, so
    /// the id itself is reachable by path only.
    pub fn reads_as_port_form(&self) -> Option<u16> {
        let (digits, rest) = self.0.split_once('-')?;
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let port = digits.parse::<u16>().ok().filter(|p| *p > 0)?;
        WorkspaceId::parse(rest).ok().map(|_| port)
    }
}

/// A `--workspace-domain` value, normalised: lower-case, without leading or trailing
/// dots; every label a DNS label.
pub fn workspace_domain(s: &str) -> Result<String, String> {
    let d = s
        .trim()
        .trim_start_matches('.')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if d.is_empty() {
        return Err("the workspace domain is empty".into());
    }
    if d.len() > 190 {
        return Err(format!(
            "the workspace domain {d:?} is too long for <port>-<id>.{{domain}} to be a host name"
        ));
    }
    for label in d.split('.') {
        if WorkspaceId::parse(label).is_err() {
            return Err(format!(
                "the workspace domain {s:?} has a label {label:?} that is not a DNS label"
            ));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_dns_names_and_port_forms_are_recognised() {
        assert_eq!(
            workspace_domain(".WS.Example.com.").as_deref(),
            Ok("ws.example.com")
        );
        assert_eq!(workspace_domain("localhost").as_deref(), Ok("localhost"));
        for bad in ["", ".", "a..b", "under_score.test", "-a.test", "a b"] {
            assert!(workspace_domain(bad).is_err(), "{bad}");
        }
        let id = |s: &str| WorkspaceId::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id("8080-app").reads_as_port_form(), Some(8080));
        assert_eq!(id("0-app").reads_as_port_form(), None);
        assert_eq!(id("99999-app").reads_as_port_form(), None);
        assert_eq!(id("app-8080").reads_as_port_form(), None);
        assert_eq!(id("8080").reads_as_port_form(), None);
    }

    #[test]
    fn ids_are_dns_labels() {
        for good in ["a", "ws-1", "0abc", &"a".repeat(63)] {
            assert!(WorkspaceId::parse(good).is_ok(), "{good}");
        }
        assert_eq!(WorkspaceId::parse(""), Err(InvalidWorkspaceId::Empty));
        assert_eq!(
            WorkspaceId::parse(&"a".repeat(64)),
            Err(InvalidWorkspaceId::TooLong(64))
        );
        for bad in ["-a", "a-", "A", "a_b", "a.b", "a/b", "a%2f", "é"] {
            assert!(
                matches!(
                    WorkspaceId::parse(bad),
                    Err(InvalidWorkspaceId::BadCharacters(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn deserializing_validates() {
        let ok: Result<WorkspaceId, _> = serde_json::from_str("\"ws-1\"");
        assert_eq!(ok.map(|w| w.to_string()).ok().as_deref(), Some("ws-1"));
        let bad: Result<WorkspaceId, _> = serde_json::from_str("\"../etc\"");
        assert!(bad.is_err());
    }
}
