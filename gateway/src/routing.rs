//! `/route/<id>/<rest>` → which workspace, and what path its upstream sees. Pure.
//!
//! The id must be a DNS label. The rest is forwarded as sent (still percent-encoded), but
//! it is checked after percent-decoding: a `..` segment, an encoded `/` or `\`, a NUL or
//! a malformed escape is refused, so no upstream can be tricked into reading outside
//! its prefix.

use shared::ids::WorkspaceId;

use crate::reject::Reject;

pub const PREFIX: &str = "/route/";

/// What a request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Proxy to the workspace; `upstream` is the path and query the upstream sees.
    Workspace { id: WorkspaceId, upstream: String },
    /// `/route/<id>` without its slash: redirect here (query kept).
    AddSlash { location: String },
    /// Not under `/route/`.
    Other,
    /// Refused with this answer (400).
    Bad(Reject),
}

/// Parses a request target (path and optional query).
pub fn parse(path: &str, query: Option<&str>) -> Target {
    let Some(after) = path.strip_prefix(PREFIX) else {
        if path == "/route" {
            return Target::Bad(Reject::InvalidWorkspaceId);
        }
        return Target::Other;
    };
    let (raw_id, rest) = match after.find('/') {
        Some(i) => (&after[..i], Some(&after[i..])),
        None => (after, None),
    };
    let Ok(id) = WorkspaceId::parse(raw_id) else {
        return Target::Bad(Reject::InvalidWorkspaceId);
    };
    let q = query.map(|q| format!("?{q}")).unwrap_or_default();
    let Some(rest) = rest else {
        return Target::AddSlash {
            location: format!("{PREFIX}{id}/{q}"),
        };
    };
    if check_decoded(rest).is_err() {
        return Target::Bad(Reject::BadPath);
    }
    Target::Workspace {
        id,
        upstream: format!("{rest}{q}"),
    }
}

/// Rejects paths that mean something else once decoded.
fn check_decoded(rest: &str) -> Result<(), ()> {
    let bytes = rest.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else { return Err(()) };
            if matches!(b, b'/' | b'\\' | 0) {
                return Err(());
            }
            decoded.push(b);
            i += 3;
        } else {
            if bytes[i] == b'\\' {
                return Err(());
            }
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    if decoded
        .split(|b| *b == b'/')
        .any(|seg| seg == b".." || seg == b".")
    {
        return Err(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(id: &str, upstream: &str) -> Target {
        Target::Workspace {
            id: WorkspaceId::parse(id).unwrap_or_else(|e| panic!("{e}")),
            upstream: upstream.into(),
        }
    }

    #[test]
    fn tricky_paths() {
        let cases: Vec<(&str, Option<&str>, Target)> = vec![
            ("/route/ws-1/", None, ws("ws-1", "/")),
            (
                "/route/ws-1/a/b",
                Some("x=1&y=%2F"),
                ws("ws-1", "/a/b?x=1&y=%2F"),
            ),
            ("/route/ws-1/sp%20ace", None, ws("ws-1", "/sp%20ace")),
            ("/route/ws-1//double", None, ws("ws-1", "//double")),
            (
                "/route/ws-1",
                None,
                Target::AddSlash {
                    location: "/route/ws-1/".into(),
                },
            ),
            (
                "/route/ws-1",
                Some("token=t"),
                Target::AddSlash {
                    location: "/route/ws-1/?token=t".into(),
                },
            ),
            ("/route/WS/", None, Target::Bad(Reject::InvalidWorkspaceId)),
            ("/route//x", None, Target::Bad(Reject::InvalidWorkspaceId)),
            ("/route/", None, Target::Bad(Reject::InvalidWorkspaceId)),
            ("/route", None, Target::Bad(Reject::InvalidWorkspaceId)),
            (
                "/route/a%2Fb/",
                None,
                Target::Bad(Reject::InvalidWorkspaceId),
            ),
            ("/route/ws/../other/", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/a/%2e%2e/b", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/a/%2E%2E", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/a%2fb", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/a%5cb", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/a\\b", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/a%00", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/a%zz", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/a%2", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/./x", None, Target::Bad(Reject::BadPath)),
            ("/route/ws/..x/y", None, ws("ws", "/..x/y")),
            ("/", None, Target::Other),
            ("/routes/x", None, Target::Other),
        ];
        for (path, query, expected) in cases {
            assert_eq!(parse(path, query), expected, "{path} {query:?}");
        }
    }
}
