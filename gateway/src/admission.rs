//! Whether a request gets through, and to which pod: the gateway's checks in the order
//! they run, in one place. The order is the policy: a stranger learns nothing about
//! which workspaces exist (authentication comes before the lookup), an owner's request
//! to a starting workspace is told to retry, and a workspace's connection cap is taken
//! last, only by requests that will be proxied.
//!
//! | step | refusal |
//! |---|---|
//! | the RFC 9728 document path | (answered: the document) |
//! | the host (`<id>.DOMAIN`) or path (`/route/<id>/…`) names a workspace | 404 neither, 308 to add a slash, 400 bad id or path |
//! | a route table has arrived | 503 `route_table_not_loaded` (after a short wait) |
//! | a valid token (auth on; the cookie only from the workspace's own origin) | 401 with the challenge |
//! | a page opened with `?token=` | 303 to the same URL without it, the cookie set |
//! | the workspace exists | 404 `workspace_not_found` |
//! | the caller owns it (auth on) | 404 `workspace_not_found`, as if missing (logged as `forbidden`) |
//! | the port a host names is one the pod declares | 404 `workspace_not_found` |
//! | it is not suspended, or it wakes for its owner (`wake.rs`; a request that finds its new pod starting while another waits for the wake joins that wait) | 503 `workspace_suspended`; 503 `workspace_waking` + `Retry-After` after `--wake-timeout` |
//! | it is Ready | 503 `workspace_not_ready` + `Retry-After` |
//! | a connection slot is free | 503 `workspace_connection_limit` + `Retry-After` |

use std::sync::Arc;
use std::time::Duration;

use pingora::http::RequestHeader;
use shared::auth::Identity;
use shared::auth::http::{self as auth_http, SameSite, TokenSource};
use shared::ids::WorkspaceId;
use shared::route::Route;

use crate::answer::Answer;
use crate::auth::{self, GatewayAuth};
use crate::limits::{ConnectionCounts, Slot};
use crate::reject::Reject;
use crate::routing::{self, Routing, Target, Via};
use crate::store::RouteStore;
use crate::wake::{Waker, Woken};

/// How long a request that arrives before the first route table waits for it.
const FIRST_TABLE_WAIT: Duration = Duration::from_secs(2);

/// What the checks consult.
pub struct Gate {
    pub store: Arc<RouteStore>,
    pub auth: Option<GatewayAuth>,
    pub connections: Arc<ConnectionCounts>,
    pub max_connections_per_workspace: u32,
    /// The listener speaks TLS (for URLs in answers and the cookie's `Secure`).
    pub tls: bool,
    /// Host and path routing.
    pub routing: Routing,
    /// Wakes suspended workspaces for their owners.
    pub waker: Arc<Waker>,
    pub wake_timeout: Duration,
}

/// A request that gets through.
pub struct Admitted {
    pub route: Arc<Route>,
    /// The path and query the workspace sees.
    pub upstream_path: String,
    /// The container port the host named (`<port>-<id>.DOMAIN`).
    pub port: Option<u16>,
    /// How the request named the workspace.
    pub via: Via,
    /// Held for the life of the request (or upgraded connection).
    pub slot: Slot,
}

/// What the checks learned, kept for the access log and the forwarded headers whether
/// or not the request got through.
#[derive(Debug, Default)]
pub struct Seen {
    pub workspace: Option<WorkspaceId>,
    pub identity: Option<Identity>,
    pub token_source: Option<TokenSource>,
    /// The token was known to the verified-token cache.
    pub cached: bool,
    /// Why a token was refused (the access log's `auth_reason`).
    pub auth_reason: Option<&'static str>,
}

impl Gate {
    /// Runs the checks in order; the first that fails decides the answer.
    pub async fn admit(&self, req: &RequestHeader, seen: &mut Seen) -> Result<Admitted, Answer> {
        let uri = &req.uri;
        if let Some(suffix) = uri.path().strip_prefix(auth_http::METADATA_PATH)
            && (suffix.is_empty() || suffix.starts_with('/'))
        {
            let issuer = self.auth.as_ref().and_then(|a| a.verifier.issuer());
            let resource = format!("{}{suffix}", self.origin(req));
            return Err(Answer::Metadata(auth_http::protected_resource_metadata(
                &resource,
                issuer,
                &["header", "query"],
            )));
        }
        let host = request_host(req);
        let (id, port, upstream, via) = match self.routing.parse(host, uri.path(), uri.query()) {
            Target::Workspace {
                id,
                port,
                upstream,
                via,
            } => (id, port, upstream, via),
            Target::AddSlash { location } => return Err(Answer::Redirect { location }),
            Target::Other => return Err(Answer::Reject(Reject::NotFound)),
            Target::Bad(reject) => return Err(Answer::Reject(reject)),
        };
        seen.workspace = Some(id.clone());
        if !self.store.wait_loaded(FIRST_TABLE_WAIT).await {
            return Err(Answer::Reject(Reject::TableNotLoaded));
        }
        if let Some(auth) = &self.auth {
            match auth.authenticate(&req.headers, host, uri.query()).await {
                Ok((who, source, cached)) => {
                    let expires_at = who.expires_at;
                    seen.identity = Some(who);
                    seen.token_source = Some(source);
                    seen.cached = cached;
                    if source == TokenSource::Query && auth::is_page_navigation(req) {
                        return Err(self.sign_in(req, &id, via, expires_at));
                    }
                }
                Err(why) => {
                    return Err(Answer::Unauthorized {
                        why,
                        metadata_url: format!("{}{}", self.origin(req), auth_http::METADATA_PATH),
                    });
                }
            }
        }
        let Some(mut route) = self.store.load().get(&id).cloned() else {
            return Err(Answer::Reject(Reject::WorkspaceNotFound));
        };
        if let Some(who) = &seen.identity
            && !auth::owns(who, &route)
        {
            return Err(Answer::Reject(Reject::Forbidden));
        }
        // Only now, the owner's (or with auth off, anyone's) request may wake it, or join
        // a wake already under way (resumed, its new pod not Ready yet). The waker's lock
        // is taken only for a route that is not Ready, never on the proxying path.
        let waking =
            route.web.suspended || (route.upstream().is_none() && self.waker.is_waking(&id));
        if waking {
            if route.web.suspended && !route.web.wake_on_request {
                return Err(Answer::Reject(Reject::WorkspaceSuspended));
            }
            route = match self.waker.wake(&self.store, &id, self.wake_timeout).await {
                Woken::Ready(r) => r,
                Woken::Gone => return Err(Answer::Reject(Reject::WorkspaceNotFound)),
                Woken::TimedOut => return Err(Answer::Reject(Reject::WorkspaceWaking)),
            };
            // The woken pod's route is a new one: it must still be this owner's.
            if let Some(who) = &seen.identity
                && !auth::owns(who, &route)
            {
                return Err(Answer::Reject(Reject::Forbidden));
            }
        }
        if let Some(p) = port
            && !route.web.ports.contains(&p)
        {
            return Err(Answer::Reject(Reject::WorkspaceNotFound));
        }
        // A route has an upstream only once it is Ready.
        if route.upstream().is_none() {
            return Err(Answer::Reject(Reject::WorkspaceNotReady));
        }
        let Some(slot) = self
            .connections
            .acquire(id.as_str(), self.max_connections_per_workspace)
        else {
            return Err(Answer::Reject(Reject::WorkspaceBusy));
        };
        let upstream_path = if self.auth.as_ref().is_some_and(|a| !a.forward_auth) {
            auth::strip_query_token(upstream)
        } else {
            upstream
        };
        Ok(Admitted {
            route,
            upstream_path,
            port,
            via,
            slot,
        })
    }

    /// A page opened with `?token=`: the token goes into the workspace's cookie and the
    /// browser is sent to the same URL without it, so it leaves the address bar, the
    /// history and every later `Referer`. The cookie is host-only on a workspace's own
    /// host (`SameSite=Lax`, so links from elsewhere open it signed in) and scoped to
    /// `/route/<id>/` on the shared path-routing origin (`Strict`).
    fn sign_in(&self, req: &RequestHeader, id: &WorkspaceId, via: Via, expires_at: u64) -> Answer {
        let token = req
            .uri
            .query()
            .and_then(auth_http::query_token)
            .unwrap_or_default();
        let (path, same_site) = match via {
            Via::Host => ("/".to_string(), SameSite::Lax),
            Via::Path => (format!("{}{id}/", routing::PREFIX), SameSite::Strict),
        };
        let max_age = expires_at.saturating_sub(unix_now());
        let location = match req.uri.query().and_then(auth_http::query_without_token) {
            Some(q) => format!("{}?{q}", req.uri.path()),
            None => req.uri.path().to_string(),
        };
        Answer::SignIn {
            location,
            cookie: auth_http::token_cookie(&path, &token, max_age, self.tls, same_site),
        }
    }

    /// `scheme://host` as the client addressed this gateway (for documents and links).
    pub fn origin(&self, req: &RequestHeader) -> String {
        auth_http::origin(
            &req.headers,
            req.uri.authority().map(|a| a.as_str()),
            self.tls,
        )
    }
}

/// What the client addressed: the `Host` header, else the URI's authority (HTTP/2).
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
