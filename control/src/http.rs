//! The HTTP side of `nocrd9`: MCP (streamable HTTP) at `/mcp` (behind the token check
//! when auth is on), the RFC 9728 document, `/healthz`, and `/readyz` (ready once the
//! first list of workspace pods has been published).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use shared::auth::http as auth_http;
use shared::auth::{AuthError, Verifier};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::mcp::NoCrdServer;

pub fn router(ctx: Context, synced: watch::Receiver<bool>, shutdown: CancellationToken) -> Router {
    let auth = ctx.auth.clone();
    let issuer = auth.as_ref().and_then(|v| v.issuer().map(str::to_string));
    let mcp = StreamableHttpService::new(
        move || Ok(NoCrdServer::new(ctx.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token()),
    );
    let mut mcp = Router::new().nest_service("/mcp", mcp);
    if let Some(verifier) = auth {
        mcp = mcp.layer(middleware::from_fn_with_state(verifier, require_token));
    }
    let metadata = move |uri: Uri, headers: HeaderMap| {
        let issuer = issuer.clone();
        async move {
            let suffix = uri
                .path()
                .strip_prefix(auth_http::METADATA_PATH)
                .unwrap_or_default();
            let doc = auth_http::protected_resource_metadata(
                &format!("{}{suffix}", auth_http::origin(&headers, None, false)),
                issuer.as_deref(),
                &["header", "query"],
            );
            axum::Json(doc)
        }
    };
    Router::new()
        .merge(mcp)
        .route(auth_http::METADATA_PATH, any(metadata.clone()))
        .route(&format!("{}/{{*resource}}", auth_http::METADATA_PATH), any(metadata))
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

/// Lets a request through to MCP only with a valid token (`Authorization: Bearer`, or
/// `?token=` as the original accepted); the verified identity rides along in the
/// request's extensions, where tools read it. Cookies are not accepted here: a
/// cross-site page could otherwise call tools with them.
async fn require_token(
    State(verifier): State<Arc<Verifier>>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = auth_http::bearer(req.headers())
        .map(str::to_string)
        .or_else(|| req.uri().query().and_then(auth_http::query_token));
    let verified = match token {
        None => Err(AuthError::Missing),
        Some(t) => verifier.verify(&t).await,
    };
    match verified {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(why) => unauthorized(req.headers(), &why),
    }
}

fn unauthorized(headers: &HeaderMap, why: &AuthError) -> Response {
    let url = format!(
        "{}{}",
        auth_http::origin(headers, None, false),
        auth_http::METADATA_PATH
    );
    let body = serde_json::json!({"error": "unauthorized", "reason": why.code(), "message": why.to_string()});
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&auth_http::challenge(&url, Some(why))) {
        h.insert("www-authenticate", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"oauth-protected-resource\"")) {
        h.insert("link", v);
    }
    resp
}
