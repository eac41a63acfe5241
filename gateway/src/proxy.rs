//! `GatewayProxy`: Pingora's `ProxyHttp` for `/route/<id>/…`. Each phase is short and
//! delegates, in Pingora's order:
//!
//! | phase | what we do |
//! |---|---|
//! | `request_filter` | head size and timeouts, then `admission::Gate::admit` (the checks, in order) or our answer (`answer.rs`) |
//! | `upstream_peer` | the pod's address (the port a host named); pooled connections are keyed by pod UID |
//! | `upstream_request_filter` | the upstream path (prefix and our token gone), `Host` per template, `forwarded::rewrite`, `auth::strip_credentials`, no token in `Referer` |
//! | `response_filter` | `responses.rs`: `Location`, `Set-Cookie`, credentials for other origins; notes an upgrade |
//! | `request_body_filter` / `response_body_filter` | activity: WebSocket data frames (not pings) on upgraded connections Pingora carries (a tunnel reports its own) |
//! | `tunnel_upgrades` / `take_upgraded` | after a WebSocket's `101`, both streams go to `tunnel.rs` and this request's task ends |
//! | `connected_to_upstream` | counts new and reused upstream connections |
//! | `fail_to_proxy` | `Reject::from_error` (502 / 504, nothing for a departed client) |
//! | `logging` | one JSON access line and the metrics |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session, UpgradedStream};
use shared::route::{Route, UpstreamHost};

use crate::access_log;
use crate::admission::{self, Gate, Seen};
use crate::answer::{self, Answer};
use crate::auth::{self, GatewayAuth};
use crate::forwarded::{self, Forwarded};
use crate::limits::{self, ConnectionCounts, Limits, Slot};
use crate::metrics::GatewayMetrics;
use crate::reject::Reject;
use crate::responses::{self, Rewrite};
use crate::routing::{self, Routing, Via};
use crate::store::RouteStore;
use crate::tunnel::{self, TunnelClose, TunnelEnd, TunnelEvents};

/// How long to wait for a workspace to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an unused pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct GatewayProxy {
    gate: Gate,
    /// `--audit-log`: one line per proxied session.
    audit: Option<shared::audit::AuditLog>,
    metrics: Arc<GatewayMetrics>,
    limits: Limits,
    default_workspace_port: u16,
    activity: Arc<shared::activity::ActivityLog>,
}

/// The proxy's settings beyond routes and auth.
pub struct ProxySettings {
    pub tls: bool,
    pub limits: Limits,
    pub default_workspace_port: u16,
    /// Where requests and WebSocket frames are recorded for the route feed to report.
    pub activity: Arc<shared::activity::ActivityLog>,
    /// Host and path routing.
    pub routing: Routing,
    /// The audit trail, when `--audit-log` is set.
    pub audit: Option<shared::audit::AuditLog>,
    /// Shared with the route feed, which carries its asks to control.
    pub waker: Arc<crate::wake::Waker>,
}

/// Per-request state, also what the access log reports.
pub struct RequestCtx {
    started: Instant,
    /// Wall-clock start (the audit trail's `start`).
    started_at: std::time::SystemTime,
    /// What admission learned (workspace, identity, where the token came from).
    seen: Seen,
    route: Option<Arc<Route>>,
    upstream_path: Option<String>,
    /// How the request named its workspace, and the port its host named.
    via: Option<Via>,
    port: Option<u16>,
    /// The client wants pages, not JSON, for our answers.
    html: bool,
    reject: Option<Reject>,
    /// A WebSocket upgrade or an event stream: idle timeouts instead of request ones.
    long_lived: bool,
    /// This request's place under the workspace's connection cap (given back on drop).
    slot: Option<Slot>,
    /// The upstream switched protocols (101): body bytes are WebSocket frames.
    upgraded: bool,
    /// The upgraded connection went to its own copy loop (`tunnel.rs`), which writes the
    /// access and audit lines when it closes.
    tunneled: bool,
}

impl GatewayProxy {
    pub fn new(
        store: Arc<RouteStore>,
        metrics: Arc<GatewayMetrics>,
        auth: Option<GatewayAuth>,
        settings: ProxySettings,
    ) -> Self {
        GatewayProxy {
            gate: Gate {
                store,
                auth,
                connections: Arc::new(ConnectionCounts::default()),
                max_connections_per_workspace: settings.limits.max_connections_per_workspace,
                tls: settings.tls,
                routing: settings.routing,
                waker: settings.waker,
                wake_timeout: settings.limits.wake_timeout,
            },
            audit: settings.audit,
            metrics,
            limits: settings.limits,
            default_workspace_port: settings.default_workspace_port,
            activity: settings.activity,
        }
    }

    fn strips_credentials(&self) -> bool {
        self.gate.auth.as_ref().is_some_and(|a| !a.forward_auth)
    }

    /// `/route/<id>` for a path-routed request (what the workspace is served under).
    fn prefix(&self, ctx: &RequestCtx) -> Option<String> {
        match (ctx.via, &ctx.seen.workspace) {
            (Some(Via::Path), Some(id)) => Some(format!("{}{id}", routing::PREFIX)),
            _ => None,
        }
    }

    /// Where this request goes: the pod's address at the port the host named, else the
    /// route's (or this gateway's default) port.
    fn upstream_addr(&self, route: &Route, port: Option<u16>) -> Option<SocketAddr> {
        let mut addr = route.upstream()?;
        if let Some(p) = port {
            addr.set_port(p);
        } else if route.port_is_default {
            addr.set_port(self.default_workspace_port);
        }
        Some(addr)
    }

    /// Writes our answer and ends the request (`Ok(true)`: Pingora stops here).
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        answer: Answer,
    ) -> Result<bool> {
        if let Answer::Unauthorized { why, .. } = &answer {
            self.metrics.record_auth_failure(why.code());
            ctx.seen.auth_reason = Some(why.code());
        }
        ctx.reject = answer.reject();
        answer::write(session, &answer, ctx.html).await?;
        Ok(true)
    }

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

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    /// No downstream modules: Pingora's default adds a response-compression module
    /// switched off, which still costs two allocations and a filter pass per request.
    /// The gateway passes bodies through as the workspace sent them.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            started_at: std::time::SystemTime::now(),
            seen: Seen::default(),
            route: None,
            upstream_path: None,
            via: None,
            port: None,
            html: false,
            reject: None,
            long_lived: false,
            slot: None,
            upgraded: false,
            tunneled: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.html = answer::wants_html(
            req.headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        );
        if limits::head_bytes(req) > self.limits.max_header_bytes {
            return self
                .answer(session, ctx, Answer::Reject(Reject::HeadersTooLarge))
                .await;
        }
        ctx.long_lived = limits::is_long_lived(req, session.is_upgrade_req());
        session.set_read_timeout(Some(if ctx.long_lived {
            self.limits.upgraded_idle_timeout
        } else {
            self.limits.downstream_timeout
        }));
        let admitted = self.gate.admit(session.req_header(), &mut ctx.seen).await;
        if ctx.seen.identity.is_some() {
            self.metrics.record_auth_success(ctx.seen.cached);
        }
        match admitted {
            Ok(a) => {
                self.activity
                    .record(&a.route.workspace_id, &a.route.pod_uid, now_ms());
                ctx.route = Some(a.route);
                ctx.upstream_path = Some(a.upstream_path);
                ctx.via = Some(a.via);
                ctx.port = a.port;
                ctx.slot = Some(a.slot);
                Ok(false)
            }
            Err(answer) => self.answer(session, ctx, answer).await,
        }
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
        let addr = self
            .upstream_addr(route, ctx.port)
            .ok_or_else(|| Error::explain(InternalError, "route has no address"))?;
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
        // The forwarded headers (up to five) and `Host`: one growth of the maps, not one
        // per doubling.
        up.reserve_headers(6);
        forwarded::rewrite(
            up,
            Forwarded {
                client_ip: session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.ip()),
                tls: self.gate.tls,
                host: session.req_header().headers.get(header::HOST),
                prefix: self.prefix(ctx),
                user: ctx.seen.identity.as_ref().map(|who| &*who.sub),
            },
        )?;
        if self.strips_credentials() {
            auth::strip_credentials(up);
        }
        if let Some(clean) = up
            .headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::referer_without_token)
        {
            up.insert_header("referer", clean)?;
        }
        if let Some(route) = &ctx.route
            && route.web.upstream_host == UpstreamHost::Pod
            && let Some(addr) = self.upstream_addr(route, ctx.port)
        {
            up.insert_header("host", addr.to_string())?;
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
        let req = session.req_header();
        let host = admission::request_host(req);
        if let Some(origin) = req
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            && auth::is_foreign_origin(origin, host)
        {
            resp.remove_header("access-control-allow-credentials");
        }
        let Some(route) = &ctx.route else {
            return Ok(());
        };
        // Most answers carry neither header: nothing to allocate for them.
        if !resp.headers.contains_key(header::LOCATION)
            && !resp.headers.contains_key(header::SET_COOKIE)
        {
            return Ok(());
        }
        let prefix = self.prefix(ctx).filter(|_| route.web.rewrite_responses);
        let pod = self.upstream_addr(route, ctx.port).map(|a| a.to_string());
        let rewrite = Rewrite {
            prefix: prefix.as_deref(),
            public_host: host,
            public_scheme: if self.gate.tls { "https" } else { "http" },
            pod_authority: pod.as_deref(),
        };
        if let Some(new) = resp
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| responses::location(loc, &rewrite))
        {
            resp.insert_header("location", new)?;
        }
        let cookies: Vec<String> = resp
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if !cookies.is_empty() {
            resp.remove_header("set-cookie");
            for c in cookies {
                if let Some(kept) = responses::set_cookie(&c, rewrite.prefix) {
                    resp.append_header("set-cookie", kept)?;
                }
            }
        }
        Ok(())
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
        let reject = Reject::from_error(e);
        ctx.reject = reject;
        if let Some(r) = reject
            && session.response_written().is_none()
            && let Err(err) = answer::write(session, &Answer::Reject(r), ctx.html).await
        {
            tracing::debug!(error = %err, "could not send the error response");
        }
        FailToProxy {
            error_code: reject.map_or(0, Reject::status),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        self.metrics.record(status, ctx.reject, elapsed);
        if ctx.tunneled {
            // the tunnel reports the session when it closes
            return;
        }
        let downstream = session.as_downstream();
        write_session(
            self.audit.as_ref(),
            &SessionLine {
                method: session.req_header().method.as_str(),
                ctx,
                status,
                bytes_in: downstream.body_bytes_read() as u64,
                bytes_out: downstream.body_bytes_sent() as u64,
                cause: e.map(|e| e.etype().as_str()).unwrap_or("-"),
            },
        );
    }

    fn tunnel_upgrades(&self, _session: &Session, ctx: &RequestCtx) -> bool {
        ctx.route.is_some()
    }

    fn take_upgraded(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        client: UpgradedStream,
        upstream: UpgradedStream,
    ) {
        if ctx.route.is_none() {
            return; // not ours to carry: dropping the streams closes the connection
        }
        // The whole context moves into the tunnel (its connection slot with it); what stays
        // is what `logging` reads for the handshake's metrics.
        let mut moved = std::mem::replace(ctx, self.new_ctx());
        moved.tunneled = true;
        ctx.started = moved.started;
        ctx.reject = moved.reject;
        ctx.tunneled = true;
        self.metrics.record_tunnel(true);
        let report = TunnelReport {
            metrics: self.metrics.clone(),
            activity: self.activity.clone(),
            audit: self.audit.clone(),
            method: session.req_header().method.clone(),
            ctx: moved,
        };
        tokio::spawn(tunnel::run(
            (client.stream, client.early),
            (upstream.stream, upstream.early),
            Some(self.limits.upgraded_idle_timeout),
            Box::new(report),
        ));
    }
}

/// What one finished session's access-log and audit lines say.
struct SessionLine<'a> {
    method: &'a str,
    ctx: &'a RequestCtx,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    cause: &'a str,
}

/// The audit line (`--audit-log`) and the access-log line of a finished session. Never the
/// query string (it may carry a token), never headers or cookies.
fn write_session(audit: Option<&shared::audit::AuditLog>, line: &SessionLine<'_>) {
    let ctx = line.ctx;
    if let (Some(audit), Some(route)) = (audit, &ctx.route) {
        let mut f = serde_json::Map::new();
        f.insert(
            "subject".into(),
            serde_json::json!(ctx.seen.identity.as_ref().map(|i| &*i.sub)),
        );
        f.insert(
            "workspace".into(),
            serde_json::json!(route.workspace_id.as_str()),
        );
        f.insert("pod".into(), serde_json::json!(route.pod_uid));
        f.insert(
            "kind".into(),
            serde_json::json!(if ctx.upgraded { "websocket" } else { "http" }),
        );
        f.insert("method".into(), serde_json::json!(line.method));
        f.insert(
            "start".into(),
            serde_json::json!(shared::time::rfc3339(ctx.started_at)),
        );
        f.insert("end".into(), serde_json::json!(shared::time::rfc3339_now()));
        f.insert("status".into(), serde_json::json!(line.status));
        f.insert("bytesIn".into(), serde_json::json!(line.bytes_in));
        f.insert("bytesOut".into(), serde_json::json!(line.bytes_out));
        audit.record("proxied_session", f);
    }
    if access_log::enabled() {
        access_log::record(&access_log::Entry {
            method: line.method,
            workspace_id: ctx.seen.workspace.as_ref().map_or("-", |w| w.as_str()),
            status: line.status,
            error: ctx.reject.map_or("-", Reject::reason),
            auth_reason: ctx.seen.auth_reason.unwrap_or("-"),
            upstream: ctx.route.as_ref().and_then(|r| r.upstream()),
            duration_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
            bytes: line.bytes_out as usize,
            cause: line.cause,
        });
    }
}

/// What a WebSocket's own copy loop reports to: data frames are activity (as
/// `note_frames` does for connections Pingora carries), and at the end the session's lines.
/// Holds the request's context, so its place under the workspace's connection cap is given
/// back only when the tunnel closes.
struct TunnelReport {
    metrics: Arc<GatewayMetrics>,
    activity: Arc<shared::activity::ActivityLog>,
    audit: Option<shared::audit::AuditLog>,
    method: http::Method,
    ctx: RequestCtx,
}

impl TunnelEvents for TunnelReport {
    fn on_data(&mut self, _from_client: bool, chunk: &[u8]) {
        if let Some(route) = &self.ctx.route
            && is_websocket_data(chunk)
        {
            self.activity
                .record(&route.workspace_id, &route.pod_uid, now_ms());
        }
    }

    fn on_end(&mut self, end: &TunnelEnd) {
        self.metrics.record_tunnel(false);
        write_session(
            self.audit.as_ref(),
            &SessionLine {
                method: self.method.as_str(),
                ctx: &self.ctx,
                status: 101,
                bytes_in: end.bytes_from_client,
                bytes_out: end.bytes_to_client,
                cause: match end.close {
                    TunnelClose::Closed => "-",
                    other => other.as_str(),
                },
            },
        );
    }
}

/// FNV-1a of the pod UID: pooled connections are keyed by it, so a connection opened to
/// one pod is never reused for a later pod that gets the same IP.
fn pool_key(pod_uid: &str) -> u64 {
    shared::hash::fnv1a(pod_uid.as_bytes())
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

#[cfg(test)]
mod tests {
    use super::{is_websocket_data, pool_key};

    #[test]
    fn pings_and_pongs_are_not_activity() {
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
