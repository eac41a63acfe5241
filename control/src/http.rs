//! The HTTP side of `nocrd9`: MCP (streamable HTTP) at `/mcp`, `/healthz`, and `/readyz`
//! (ready once the first list of workspace pods has been published).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::mcp::NoCrdServer;

pub fn router(ctx: Context, synced: watch::Receiver<bool>, shutdown: CancellationToken) -> Router {
    let mcp = StreamableHttpService::new(
        move || Ok(NoCrdServer::new(ctx.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token()),
    );
    Router::new()
        .nest_service("/mcp", mcp)
        .route("/healthz", get(|| async { (StatusCode::OK, [("content-type", "application/json")], "{\"status\":\"ok\"}") }))
        .route(
            "/readyz",
            get(move || {
                let ready = *synced.borrow();
                async move {
                    if ready {
                        (StatusCode::OK, [("content-type", "application/json")], "{\"status\":\"ready\"}").into_response()
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("content-type", "application/json")],
                            "{\"status\":\"not_ready\",\"reason\":\"the first list of workspace pods has not been published yet\"}",
                        )
                            .into_response()
                    }
                }
            }),
        )
}
