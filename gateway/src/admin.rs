//! The admin listener: `/healthz` (the process serves), `/readyz` (a route table has been
//! received), `/metrics` (Prometheus). Runs as a Pingora background service.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::net::TcpListener;

use crate::metrics::GatewayMetrics;
use crate::store::RouteStore;
use crate::sync::SyncStatus;

pub struct AdminService {
    pub addr: SocketAddr,
    pub state: Arc<AdminState>,
}

/// What the admin endpoints report on.
pub struct AdminState {
    pub store: Arc<RouteStore>,
    pub sync: Arc<SyncStatus>,
    pub metrics: Arc<GatewayMetrics>,
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

impl AdminState {
    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "application/json", "{\"status\":\"ok\"}".into()),
            "/readyz" if self.store.is_loaded() => text(StatusCode::OK, "application/json", "{\"status\":\"ready\"}".into()),
            "/readyz" => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                "{\"status\":\"not_ready\",\"reason\":\"no route table received from the control plane yet\"}".into(),
            ),
            "/metrics" => text(StatusCode::OK, "text/plain; version=0.0.4", self.metrics.render(&self.store, &self.sync)),
            _ => text(StatusCode::NOT_FOUND, "application/json", "{\"error\":\"not_found\"}".into()),
        }
    }
}

/// Binds with SO_REUSEPORT, so during a binary upgrade the new gateway's admin
/// listener can start while the old one is still draining.
fn bind_shared(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match bind_shared(self.addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %self.addr, error = %e, "cannot bind the admin listener");
                return;
            }
        };
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.changed() => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        continue;
                    }
                },
            };
            let state = self.state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let resp = state.answer(&req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}
