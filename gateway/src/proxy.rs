//! `GatewayProxy`: Pingora's `ProxyHttp` for `/route/<id>/…`. Each phase is short and
//! delegates: `routing` parses, the `RouteStore` answers (lock-free), `Reject` renders
//! our errors.
//!
//! | phase | what we do |
//! |---|---|
//! | `request_filter` | parse the path; redirect, 400, 401/403 (token, owner), 404, 503 (not ready / no table) or pick the route |
//! | `upstream_peer` | the pod's address; the pool is keyed by pod UID too |
//! | `upstream_request_filter` | strip `/route/<id>` and our token, keep the query, set `X-Forwarded-*` (client copies dropped) |
//! | `response_filter` | the workspace cookie for a page opened with `?token=`; notes an upgrade |
//! | `*_body_filter` | activity: WebSocket data frames (not pings) on upgraded connections |
//! | `fail_to_proxy` | 502 / 504 as JSON with a stable code |
//! | `logging` | one JSON access line and the metrics |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use shared::auth::Identity;
use shared::auth::http::{self as auth_http, TokenSource};
use shared::route::{Route, RouteState};

use crate::auth::{self, GatewayAuth};
use crate::limits::{self, ConnectionCounts, Limits, Slot};
use crate::metrics::GatewayMetrics;
use crate::reject::Reject;
use crate::routing::{self, Target};
use crate::store::RouteStore;

/// Headers only the gateway may set; client-supplied copies are dropped.
const FORWARDED_HEADERS: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-forwarded-user",
    "forwarded",
];

/// How long to wait for a workspace to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request that arrives before the first route table waits for it.
const FIRST_TABLE_WAIT: Duration = Duration::from_secs(2);
/// How long an unused pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct GatewayProxy {
    store: Arc<RouteStore>,
    metrics: Arc<GatewayMetrics>,
    auth: Option<GatewayAuth>,
    /// The listener speaks TLS (`X-Forwarded-Proto`, `Secure` cookies).
    tls: bool,
    limits: Limits,
    default_workspace_port: u16,
    connections: Arc<ConnectionCounts>,
    activity: Arc<shared::activity::ActivityLog>,
}

/// The proxy's settings beyond routes and auth.
pub struct ProxySettings {
    pub tls: bool,
    pub limits: Limits,
    pub default_workspace_port: u16,
    /// Where requests and WebSocket frames are recorded for the route feed to report.
    pub activity: Arc<shared::activity::ActivityLog>,
}

impl GatewayProxy {
    pub fn new(
        store: Arc<RouteStore>,
        metrics: Arc<GatewayMetrics>,
        auth: Option<GatewayAuth>,
        settings: ProxySettings,
    ) -> Self {
        GatewayProxy {
            store,
            metrics,
            auth,
            tls: settings.tls,
            limits: settings.limits,
            default_workspace_port: settings.default_workspace_port,
            connections: Arc::default(),
            activity: settings.activity,
        }
    }

    fn metadata_url(&self, session: &Session) -> String {
        format!("{}{}", origin(session, self.tls), auth_http::METADATA_PATH)
    }

    /// The RFC 9728 document: `/.well-known/oauth-protected-resource[/<resource path>]`.
    async fn serve_metadata(&self, session: &mut Session, suffix: &str) -> Result<bool> {
        let origin = origin(session, self.tls);
        let issuer = self.auth.as_ref().and_then(|a| a.verifier.issuer());
        let doc = auth_http::protected_resource_metadata(
            &format!("{origin}{suffix}"),
            issuer,
            &["header", "query"],
        );
        let body = Bytes::from(doc.to_string());
        let mut resp = ResponseHeader::build(200, Some(3))?;
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("content-length", body.len().to_string())?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
    }

    /// 401 with the challenge pointing at the metadata, and why.
    async fn unauthorized(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        why: shared::auth::AuthError,
    ) -> Result<bool> {
        self.metrics.record_auth_failure(why.code());
        ctx.reject = Some(Reject::Unauthorized);
        ctx.auth_reason = Some(why.code());
        let body = Reject::unauthorized_body(&why);
        let mut resp = ResponseHeader::build(401, Some(4))?;
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("content-length", body.len().to_string())?;
        resp.insert_header("cache-control", "no-store")?;
        let url = self.metadata_url(session);
        resp.insert_header("www-authenticate", auth_http::challenge(&url, Some(&why)))?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
    }
}

/// Per-request state, also what the access log reports.
pub struct RequestCtx {
    started: Instant,
    workspace: Option<String>,
    route: Option<Arc<Route>>,
    upstream_path: Option<String>,
    reject: Option<Reject>,
    /// Why a token was refused (with `Reject::Unauthorized`).
    auth_reason: Option<&'static str>,
    identity: Option<Identity>,
    token_source: Option<TokenSource>,
    /// A WebSocket upgrade or an event stream: idle timeouts instead of request ones.
    long_lived: bool,
    /// This request's place under the workspace's connection cap.
    _slot: Option<Slot>,
    /// The upstream switched protocols (101): body bytes are WebSocket frames.
    upgraded: bool,
}

/// FNV-1a of the pod UID: pooled connections are keyed by it, so a connection opened to
/// one pod is never reused for a later pod that gets the same IP.
fn pool_key(pod_uid: &str) -> u64 {
    shared::hash::fnv1a(pod_uid.as_bytes())
}

async fn respond(session: &mut Session, reject: Reject) -> Result<()> {
    let body = reject.body();
    let mut resp = ResponseHeader::build(reject.status(), Some(4))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    if let Some(secs) = reject.retry_after() {
        resp.insert_header("retry-after", secs.to_string())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

async fn redirect(session: &mut Session, location: &str) -> Result<()> {
    let mut resp = ResponseHeader::build(308, Some(3))?;
    resp.insert_header("location", location)?;
    resp.insert_header("content-length", "0")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(Bytes::new()), true).await
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            workspace: None,
            route: None,
            upstream_path: None,
            reject: None,
            auth_reason: None,
            identity: None,
            token_source: None,
            long_lived: false,
            _slot: None,
            upgraded: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if limits::head_bytes(session.req_header()) > self.limits.max_header_bytes {
            return reject(session, ctx, Reject::HeadersTooLarge).await;
        }
        ctx.long_lived = session.is_upgrade_req()
            || session
                .req_header()
                .headers
                .get("accept")
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("text/event-stream"));
        session.set_read_timeout(Some(if ctx.long_lived {
            self.limits.upgraded_idle_timeout
        } else {
            self.limits.downstream_timeout
        }));
        let uri = &session.req_header().uri;
        if let Some(suffix) = uri.path().strip_prefix(auth_http::METADATA_PATH)
            && (suffix.is_empty() || suffix.starts_with('/'))
        {
            let suffix = suffix.to_string();
            return self.serve_metadata(session, &suffix).await;
        }
        let target = routing::parse(uri.path(), uri.query());
        let (id, upstream) = match target {
            Target::Workspace { id, upstream } => (id, upstream),
            Target::AddSlash { location } => {
                redirect(session, &location).await?;
                return Ok(true);
            }
            Target::Other => return reject(session, ctx, Reject::NotFound).await,
            Target::Bad(code) => return reject(session, ctx, Reject::from_code(code)).await,
        };
        ctx.workspace = Some(id.to_string());
        if !self.store.wait_loaded(FIRST_TABLE_WAIT).await {
            return reject(session, ctx, Reject::TableNotLoaded).await;
        }
        // Authenticate before looking the id up, so strangers cannot probe which ids exist.
        if let Some(auth) = &self.auth {
            let req = session.req_header();
            match auth.authenticate(&req.headers, req.uri.query()).await {
                Ok((who, source, cached)) => {
                    self.metrics.record_auth_success(cached);
                    ctx.identity = Some(who);
                    ctx.token_source = Some(source);
                }
                Err(why) => return self.unauthorized(session, ctx, why).await,
            }
        }
        let route = self.store.load().get(&id).cloned();
        let Some(route) = route else {
            return reject(session, ctx, Reject::WorkspaceNotFound).await;
        };
        if let Some(who) = &ctx.identity
            && auth::check_owner(&route, who).is_err()
        {
            return reject(session, ctx, Reject::Forbidden).await;
        }
        if route.state != RouteState::Ready || route.upstream().is_none() {
            return reject(session, ctx, Reject::WorkspaceNotReady).await;
        }
        match self
            .connections
            .acquire(id.as_str(), self.limits.max_connections_per_workspace)
        {
            Some(slot) => ctx._slot = Some(slot),
            None => return reject(session, ctx, Reject::WorkspaceBusy).await,
        }
        let strip = self.auth.as_ref().is_some_and(|a| !a.forward_auth);
        ctx.upstream_path = Some(if strip {
            auth::strip_query_token(&upstream)
        } else {
            upstream
        });
        self.activity
            .record(&route.workspace_id, &route.pod_uid, now_ms());
        ctx.route = Some(route);
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.note_frames(ctx, body.as_deref());
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        self.note_frames(ctx, body.as_deref());
        Ok(None)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(InternalError, "no route selected"))?;
        let mut addr: SocketAddr = route
            .upstream()
            .ok_or_else(|| Error::explain(InternalError, "route has no address"))?;
        if route.port_is_default {
            addr.set_port(self.default_workspace_port);
        }
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.group_key = pool_key(&route.pod_uid);
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT.min(self.limits.upstream_timeout));
        let io_timeout = if ctx.long_lived {
            self.limits.upgraded_idle_timeout
        } else {
            self.limits.upstream_timeout
        };
        peer.options.read_timeout = Some(io_timeout);
        peer.options.write_timeout = Some(io_timeout);
        peer.options.idle_timeout = Some(POOL_IDLE_TIMEOUT);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let path = ctx.upstream_path.as_deref().unwrap_or("/");
        let uri = path
            .parse::<http::Uri>()
            .map_err(|e| Error::because(InternalError, "rewriting the path", e))?;
        up.set_uri(uri);
        for h in FORWARDED_HEADERS {
            up.remove_header(h);
        }
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string());
        if let Some(ip) = client_ip {
            up.insert_header("x-forwarded-for", ip)?;
        }
        up.insert_header("x-forwarded-proto", if self.tls { "https" } else { "http" })?;
        if let Some(who) = &ctx.identity {
            up.insert_header("x-forwarded-user", &*who.sub)?;
        }
        if self.auth.as_ref().is_some_and(|a| !a.forward_auth) {
            auth::strip_credentials(up);
        }
        let host = session.req_header().headers.get("host").cloned();
        if let Some(host) = host {
            up.insert_header("x-forwarded-host", host)?;
        }
        if let Some(id) = &ctx.workspace {
            up.insert_header("x-forwarded-prefix", format!("{}{id}", routing::PREFIX))?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upgraded = resp.status.as_u16() == 101;
        // A page opened with `?token=` gets the token as a cookie scoped to this
        // workspace, so its own links and sub-requests keep working.
        let (Some(TokenSource::Query), Some(who), Some(id)) =
            (ctx.token_source, &ctx.identity, &ctx.workspace)
        else {
            return Ok(());
        };
        if !auth::is_page_navigation(session.req_header()) {
            return Ok(());
        }
        let Some(token) = session
            .req_header()
            .uri
            .query()
            .and_then(auth_http::query_token)
        else {
            return Ok(());
        };
        let max_age = who.expires_at.saturating_sub(now_secs());
        let path = format!("{}{id}/", routing::PREFIX);
        resp.append_header(
            "set-cookie",
            auth_http::token_cookie(&path, &token, max_age, self.tls),
        )?;
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.metrics.record_upstream_connection(reused);
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let reject = match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => Some(Reject::UpstreamTimeout),
            ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure => {
                Some(Reject::UpstreamUnavailable)
            }
            _ if e.esource() == &ErrorSource::Upstream => Some(Reject::UpstreamUnavailable),
            _ if e.esource() == &ErrorSource::Downstream => None,
            _ => Some(Reject::Internal),
        };
        let code = match reject {
            Some(r) if session.response_written().is_none() => {
                ctx.reject = Some(r);
                if let Err(err) = respond(session, r).await {
                    tracing::debug!(error = %err, "could not send the error response");
                }
                r.status()
            }
            Some(r) => {
                ctx.reject = Some(r);
                r.status()
            }
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        self.metrics.record(status, ctx.reject, elapsed);
        // Never the query string (it may carry a token), never headers or cookies.
        tracing::info!(
            target: "access",
            method = %session.req_header().method,
            workspace_id = ctx.workspace.as_deref().unwrap_or("-"),
            status,
            error = ctx.reject.map_or("-", Reject::code),
            auth_reason = ctx.auth_reason.unwrap_or("-"),
            upstream = %ctx.route.as_ref().and_then(|r| r.upstream()).map_or_else(|| "-".to_string(), |a| a.to_string()),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes = session.as_downstream().body_bytes_sent(),
            cause = e.map(|e| e.etype().as_str()).unwrap_or("-"),
        );
    }
}

impl GatewayProxy {
    /// Activity on an upgraded connection: a chunk that starts a data frame (pings and
    /// pongs are keep-alives, not activity).
    fn note_frames(&self, ctx: &RequestCtx, chunk: Option<&[u8]>) {
        if !ctx.upgraded {
            return;
        }
        let (Some(route), Some(chunk)) = (&ctx.route, chunk) else {
            return;
        };
        if is_websocket_data(chunk) {
            self.activity
                .record(&route.workspace_id, &route.pod_uid, now_ms());
        }
    }
}

/// Whether a WebSocket chunk starts with a data (or close) frame rather than a ping or
/// pong. Frames are read from their first byte's opcode; a chunk that continues an
/// earlier frame counts as data.
fn is_websocket_data(chunk: &[u8]) -> bool {
    match chunk.first() {
        None => false,
        Some(b) => !matches!(b & 0x0F, 0x9 | 0xA),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn origin(session: &Session, tls: bool) -> String {
    let req = session.req_header();
    auth_http::origin(&req.headers, req.uri.authority().map(|a| a.as_str()), tls)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sends our answer and stops the request.
async fn reject(session: &mut Session, ctx: &mut RequestCtx, r: Reject) -> Result<bool> {
    ctx.reject = Some(r);
    respond(session, r).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::pool_key;

    #[test]
    fn pings_and_pongs_are_not_activity() {
        use super::is_websocket_data;
        assert!(
            is_websocket_data(&[0x81, 0x85, 1, 2, 3, 4, 5]),
            "masked text frame"
        );
        assert!(is_websocket_data(&[0x82, 0x00]), "binary frame");
        assert!(!is_websocket_data(&[0x89, 0x80, 1, 2, 3, 4]), "ping");
        assert!(!is_websocket_data(&[0x8A, 0x00]), "pong");
        assert!(!is_websocket_data(&[]));
    }

    #[test]
    fn pool_keys_differ_per_pod() {
        assert_ne!(pool_key("uid-a"), pool_key("uid-b"));
        assert_eq!(pool_key("uid-a"), pool_key("uid-a"));
    }
}
