//! Our own answers (not the upstream's): a status, a stable `error` code, and a small
//! JSON body. The access log and metrics name the real reason (`reason()`); the client
//! is told only what it may know: someone else's workspace answers exactly like a
//! missing one, so nobody learns which ids exist.

use bytes::Bytes;

/// Seconds a client should wait before retrying a not-yet-ready workspace.
pub const RETRY_AFTER_SECS: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    NotFound,
    WorkspaceNotFound,
    WorkspaceNotReady,
    WorkspaceSuspended,
    WorkspaceWaking,
    TableNotLoaded,
    InvalidWorkspaceId,
    BadPath,
    Unauthorized,
    Forbidden,
    HeadersTooLarge,
    WorkspaceBusy,
    UpstreamUnavailable,
    UpstreamTimeout,
    Internal,
}

impl Reject {
    /// Every answer, in a fixed order (metrics label them by code).
    pub const ALL: [Reject; 15] = [
        Reject::NotFound,
        Reject::WorkspaceNotFound,
        Reject::WorkspaceNotReady,
        Reject::WorkspaceSuspended,
        Reject::WorkspaceWaking,
        Reject::TableNotLoaded,
        Reject::InvalidWorkspaceId,
        Reject::BadPath,
        Reject::Unauthorized,
        Reject::Forbidden,
        Reject::HeadersTooLarge,
        Reject::WorkspaceBusy,
        Reject::UpstreamUnavailable,
        Reject::UpstreamTimeout,
        Reject::Internal,
    ];

    /// Our answer to a failure while proxying: timeouts are 504, an upstream that
    /// refused or broke off is 502, a client that went away gets nothing (`None`), and
    /// anything else is ours (500).
    pub fn from_error(e: &pingora::Error) -> Option<Reject> {
        use pingora::{ErrorSource, ErrorType};
        match e.etype() {
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                Some(Reject::UpstreamTimeout)
            }
            ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::ConnectProxyFailure => Some(Reject::UpstreamUnavailable),
            _ if e.esource() == &ErrorSource::Upstream => Some(Reject::UpstreamUnavailable),
            _ if e.esource() == &ErrorSource::Downstream => None,
            _ => Some(Reject::Internal),
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Reject::NotFound | Reject::WorkspaceNotFound | Reject::Forbidden => 404,
            Reject::WorkspaceNotReady
            | Reject::WorkspaceSuspended
            | Reject::WorkspaceWaking
            | Reject::TableNotLoaded => 503,
            Reject::InvalidWorkspaceId | Reject::BadPath => 400,
            Reject::Unauthorized => 401,
            Reject::HeadersTooLarge => 431,
            Reject::WorkspaceBusy => 503,
            Reject::UpstreamUnavailable => 502,
            Reject::UpstreamTimeout => 504,
            Reject::Internal => 500,
        }
    }

    /// The code in the answer's body.
    pub fn code(self) -> &'static str {
        match self {
            Reject::Forbidden => Reject::WorkspaceNotFound.code(),
            other => other.reason(),
        }
    }

    /// What really happened, for the access log and metrics (never sent to the client).
    pub fn reason(self) -> &'static str {
        match self {
            Reject::NotFound => "not_found",
            Reject::WorkspaceNotFound => "workspace_not_found",
            Reject::WorkspaceNotReady => "workspace_not_ready",
            Reject::WorkspaceSuspended => "workspace_suspended",
            Reject::WorkspaceWaking => "workspace_waking",
            Reject::TableNotLoaded => "route_table_not_loaded",
            Reject::InvalidWorkspaceId => "invalid_workspace_id",
            Reject::BadPath => "bad_path",
            Reject::Unauthorized => "unauthorized",
            Reject::Forbidden => "forbidden",
            Reject::HeadersTooLarge => "headers_too_large",
            Reject::WorkspaceBusy => "workspace_connection_limit",
            Reject::UpstreamUnavailable => "upstream_unavailable",
            Reject::UpstreamTimeout => "upstream_timeout",
            Reject::Internal => "internal_error",
        }
    }

    /// What the refusal means, in words (the JSON `message`, the HTML page's text).
    pub fn message(self) -> &'static str {
        match self {
            Reject::NotFound => {
                "nothing is served here: no workspace is named by this host or path"
            }
            Reject::WorkspaceNotFound => "no workspace with this id",
            Reject::WorkspaceNotReady => "the workspace is starting; retry shortly",
            Reject::WorkspaceSuspended => {
                "the workspace is suspended; its owner resumes it with resume_workspace"
            }
            Reject::WorkspaceWaking => "the workspace is waking up; retry shortly",
            Reject::TableNotLoaded => {
                "the gateway has not received its routes from the control plane yet"
            }
            Reject::InvalidWorkspaceId => {
                "a workspace id is a DNS label: lowercase letters, digits and '-'"
            }
            Reject::BadPath => {
                "the path contains '..', '.', an encoded slash or backslash, a NUL or a bad escape"
            }
            Reject::Unauthorized => "a valid token is required",
            Reject::Forbidden => Reject::WorkspaceNotFound.message(),
            Reject::HeadersTooLarge => "the request line and headers are too large",
            Reject::WorkspaceBusy => {
                "the workspace has as many open connections as it may; retry shortly"
            }
            Reject::UpstreamUnavailable => "the workspace did not accept the connection",
            Reject::UpstreamTimeout => "the workspace did not answer in time",
            Reject::Internal => "the gateway failed to handle the request",
        }
    }

    /// Whether clients should retry (with `Retry-After`).
    pub fn retry_after(self) -> Option<u32> {
        matches!(
            self,
            Reject::WorkspaceNotReady
                | Reject::WorkspaceWaking
                | Reject::TableNotLoaded
                | Reject::WorkspaceBusy
        )
        .then_some(RETRY_AFTER_SECS)
    }

    pub fn body(self) -> Bytes {
        Bytes::from(
            serde_json::json!({"error": self.code(), "message": self.message()}).to_string(),
        )
    }

    /// The body of a 401, with why the token was refused.
    pub fn unauthorized_body(why: &shared::auth::AuthError) -> Bytes {
        Bytes::from(
            serde_json::json!({"error": Reject::Unauthorized.code(), "reason": why.code(), "message": why.to_string()})
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn someone_elses_workspace_answers_like_a_missing_one() {
        assert_eq!(
            Reject::Forbidden.status(),
            Reject::WorkspaceNotFound.status()
        );
        assert_eq!(Reject::Forbidden.body(), Reject::WorkspaceNotFound.body());
        assert_eq!(Reject::Forbidden.retry_after(), None);
        assert_eq!(Reject::Forbidden.reason(), "forbidden", "the log knows");
    }

    #[test]
    fn bodies_are_small_json_with_a_stable_code() {
        for r in Reject::ALL {
            let v: serde_json::Value =
                serde_json::from_slice(&r.body()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(v["error"], r.code());
            assert!(
                Reject::ALL
                    .iter()
                    .filter(|x| x.reason() == r.reason())
                    .count()
                    == 1,
                "reasons are distinct"
            );
            assert!(r.body().len() < 200);
        }
        assert_eq!(Reject::WorkspaceNotReady.retry_after(), Some(2));
        assert_eq!(Reject::WorkspaceNotFound.retry_after(), None);
    }

    #[test]
    fn proxying_failures_map_to_502_504_or_nothing() {
        use pingora::{Error, ErrorType};
        let cases = [
            (
                Error::new_up(ErrorType::ConnectTimedout),
                Some(Reject::UpstreamTimeout),
            ),
            (
                Error::new_up(ErrorType::ReadTimedout),
                Some(Reject::UpstreamTimeout),
            ),
            (
                Error::new_up(ErrorType::ConnectRefused),
                Some(Reject::UpstreamUnavailable),
            ),
            (
                Error::new_up(ErrorType::ConnectionClosed),
                Some(Reject::UpstreamUnavailable),
            ),
            (Error::new_down(ErrorType::ConnectionClosed), None),
            (
                Error::new_in(ErrorType::InternalError),
                Some(Reject::Internal),
            ),
        ];
        for (e, expected) in cases {
            assert_eq!(Reject::from_error(&e), expected, "{e}");
        }
    }
}
