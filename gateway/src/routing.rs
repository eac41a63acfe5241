//! Which workspace a request is for, and what path its upstream sees. Pure.
//!
//! Two ways to name a workspace:
//! - **By host** (`--workspace-domain DOMAIN`): `Host: <id>.DOMAIN[:port]` is workspace
//!   `<id>` with the path untouched; `<port>-<id>.DOMAIN` is that container port of it.
//!   Each workspace is then its own browser origin. On a workspace host nothing else is
//!   routed (no `/route/` paths), so no other workspace shares its origin.
//! - **By path** (`/route/<id>/<rest>`, unless `--path-routing false`): the prefix is
//!   stripped. The rest is forwarded as sent (still percent-encoded), but it is checked
//!   after percent-decoding: a `..` segment, an encoded `/` or `\`, a NUL or a malformed
//!   escape is refused, so no upstream can be tricked into reading outside its prefix.
//!
//! Ids are DNS labels. A host label `<digits>-<rest>` whose digits are a port (1–65535)
//! is the port form, so such ids are reachable by path only (control refuses them when
//! it knows the domain).

use shared::ids::WorkspaceId;

use crate::reject::Reject;

pub const PREFIX: &str = "/route/";

/// How requests name workspaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// `--workspace-domain`: lower-case, no leading or trailing dot.
    pub domain: Option<String>,
    /// `--path-routing`.
    pub path: bool,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            domain: None,
            path: true,
        }
    }
}

/// How a request named its workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Host,
    Path,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Proxy to the workspace (at `port`, if the host named one); `upstream` is the path
    /// and query the upstream sees.
    Workspace {
        id: WorkspaceId,
        port: Option<u16>,
        upstream: String,
        via: Via,
    },
    /// `/route/<id>` without its slash: redirect here (query kept).
    AddSlash { location: String },
    /// Not a workspace's host or path.
    Other,
    /// Refused with this answer (400).
    Bad(Reject),
}

impl Routing {
    /// Parses a request's host (the `Host` header, else the URI's authority) and target.
    pub fn parse(&self, host: Option<&str>, path: &str, query: Option<&str>) -> Target {
        if let (Some(domain), Some(host)) = (&self.domain, host)
            && let Some(label) = workspace_label(host, domain)
        {
            return by_host(&label, path, query);
        }
        if self.path {
            by_path(path, query)
        } else {
            Target::Other
        }
    }

    /// The domain's form of a host header (`<label>.DOMAIN[:port]`), for tests and links.
    pub fn is_workspace_host(&self, host: &str) -> bool {
        self.domain
            .as_deref()
            .is_some_and(|d| workspace_label(host, d).is_some())
    }
}

/// The label before `.domain` in `host` (port stripped, lower-cased), if the host is
/// under the domain.
fn workspace_label(host: &str, domain: &str) -> Option<String> {
    if host.starts_with('[') {
        return None;
    }
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let label = name.strip_suffix(domain)?.strip_suffix('.')?;
    (!label.is_empty()).then(|| label.to_string())
}

fn by_host(label: &str, path: &str, query: Option<&str>) -> Target {
    let Ok(whole) = WorkspaceId::parse(label) else {
        return Target::Bad(Reject::InvalidWorkspaceId);
    };
    let (id, port) = match whole.reads_as_port_form() {
        Some(port) => match label
            .split_once('-')
            .map(|(_, rest)| WorkspaceId::parse(rest))
        {
            Some(Ok(id)) => (id, Some(port)),
            _ => (whole, None),
        },
        None => (whole, None),
    };
    Target::Workspace {
        id,
        port,
        upstream: path_and_query(path, query),
        via: Via::Host,
    }
}

fn by_path(path: &str, query: Option<&str>) -> Target {
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
    let Some(rest) = rest else {
        return Target::AddSlash {
            location: path_and_query(&format!("{PREFIX}{id}/"), query),
        };
    };
    if check_decoded(rest).is_err() {
        return Target::Bad(Reject::BadPath);
    }
    Target::Workspace {
        id,
        port: None,
        upstream: path_and_query(rest, query),
        via: Via::Path,
    }
}

/// `path?query` in one allocation (this runs for every request).
fn path_and_query(path: &str, query: Option<&str>) -> String {
    let mut out = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Rejects paths that mean something else once decoded.
fn check_decoded(rest: &str) -> Result<(), ()> {
    let bytes = rest.as_bytes();
    // Nothing encoded (most requests): the path is its own decoding.
    if !bytes.contains(&b'%') {
        return check_segments(bytes);
    }
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
    check_segments(&decoded)
}

/// Rejects `.` and `..` segments and backslashes in a decoded path.
fn check_segments(decoded: &[u8]) -> Result<(), ()> {
    if decoded.contains(&b'\\')
        || decoded
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
            port: None,
            upstream: upstream.into(),
            via: Via::Path,
        }
    }

    fn host(id: &str, port: Option<u16>, upstream: &str) -> Target {
        Target::Workspace {
            id: WorkspaceId::parse(id).unwrap_or_else(|e| panic!("{e}")),
            port,
            upstream: upstream.into(),
            via: Via::Host,
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
        let routing = Routing::default();
        for (path, query, expected) in cases {
            assert_eq!(
                routing.parse(Some("gw.test"), path, query),
                expected,
                "{path} {query:?}"
            );
        }
    }

    #[test]
    fn hosts_under_the_domain_name_a_workspace_and_its_ports() {
        let routing = Routing {
            domain: Some("ws.example.com".into()),
            path: true,
        };
        let cases: Vec<(&str, &str, Option<&str>, Target)> = vec![
            (
                "demo.ws.example.com",
                "/a/b",
                Some("x=1"),
                host("demo", None, "/a/b?x=1"),
            ),
            (
                "demo.ws.example.com:8443",
                "/",
                None,
                host("demo", None, "/"),
            ),
            ("DEMO.WS.Example.COM", "/", None, host("demo", None, "/")),
            ("demo.ws.example.com.", "/", None, host("demo", None, "/")),
            (
                "8080-demo.ws.example.com",
                "/x",
                None,
                host("demo", Some(8080), "/x"),
            ),
            (
                "8080-my-app.ws.example.com",
                "/",
                None,
                host("my-app", Some(8080), "/"),
            ),
            // Not a port: the whole label is the id.
            (
                "0-demo.ws.example.com",
                "/",
                None,
                host("0-demo", None, "/"),
            ),
            (
                "99999-demo.ws.example.com",
                "/",
                None,
                host("99999-demo", None, "/"),
            ),
            (
                "my-app.ws.example.com",
                "/",
                None,
                host("my-app", None, "/"),
            ),
            // The path is the workspace's: no /route/ on a workspace host, no checks.
            (
                "demo.ws.example.com",
                "/route/other/",
                None,
                host("demo", None, "/route/other/"),
            ),
            (
                "a.b.ws.example.com",
                "/",
                None,
                Target::Bad(Reject::InvalidWorkspaceId),
            ),
            (
                "under_score.ws.example.com",
                "/",
                None,
                Target::Bad(Reject::InvalidWorkspaceId),
            ),
            // Not under the domain: path routing.
            ("ws.example.com", "/route/demo/", None, ws("demo", "/")),
            ("evilws.example.com", "/route/demo/", None, ws("demo", "/")),
            ("gw.test", "/route/demo/x", None, ws("demo", "/x")),
            ("[::1]:8080", "/route/demo/", None, ws("demo", "/")),
            ("gw.test", "/", None, Target::Other),
        ];
        for (h, path, query, expected) in cases {
            assert_eq!(routing.parse(Some(h), path, query), expected, "{h}{path}");
        }
        let host_only = Routing {
            path: false,
            ..routing
        };
        assert_eq!(
            host_only.parse(Some("gw.test"), "/route/demo/", None),
            Target::Other
        );
        assert_eq!(host_only.parse(None, "/route/demo/", None), Target::Other);
        assert_eq!(
            host_only.parse(Some("demo.ws.example.com"), "/", None),
            host("demo", None, "/")
        );
    }
}
