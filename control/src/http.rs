//! The HTTP side of `nocrd9`, all under `--base-url`: MCP (streamable HTTP) at `/mcp`
//! (behind the token check when auth is on), the RFC 9728 document (also at the root,
//! where clients look for it), `/healthz`, `/readyz` (ready once the first list of
//! workspace pods has been published) and `/metrics`; CORS on every route.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use shared::auth::http as auth_http;
use shared::auth::{AuthError, Verifier};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::{Cors, HttpOptions};
use crate::context::Context;
use crate::mcp::NoCrdServer;
use crate::metrics::ControlMetrics;

fn cors_layer(cors: &Cors) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(cors.methods.clone())
        .allow_headers(cors.headers.clone())
        .expose_headers([HeaderName::from_static("mcp-session-id")]);
    match &cors.origins {
        None => layer.allow_origin(AllowOrigin::any()),
        Some(list) => layer.allow_origin(AllowOrigin::list(list.clone())),
    }
}

#[derive(Clone)]
struct AuthState {
    verifier: Arc<Verifier>,
    metrics: Arc<ControlMetrics>,
    /// `--public-url`: what documents and challenges name instead of the Host header.
    public_url: Option<String>,
}

/// `scheme://host` for documents and challenges: `--public-url` when set, else the
/// request's Host if it is a well-formed host (anything else becomes `localhost`).
fn origin_of(public_url: Option<&str>, headers: &HeaderMap) -> String {
    match public_url {
        Some(url) => url.to_string(),
        None => auth_http::origin(headers, None, false),
    }
}

pub fn router(
    ctx: Context,
    synced: watch::Receiver<bool>,
    shutdown: CancellationToken,
    opts: &HttpOptions,
) -> Router {
    let auth = ctx.auth.clone();
    let metrics = ctx.metrics.clone();
    let public_url = ctx.public_url.clone();
    let publisher = ctx.publisher.clone();
    let issuer = auth.as_ref().and_then(|v| v.issuer().map(str::to_string));
    let mut config =
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token());
    config = match &opts.allowed_hosts {
        Some(hosts) => config.with_allowed_hosts(hosts.clone()),
        None => config.disable_allowed_hosts(),
    };
    if let Some(origins) = &opts.cors.origins {
        config = config.with_allowed_origins(
            origins
                .iter()
                .filter_map(|o| o.to_str().ok().map(str::to_string)),
        );
    }
    let mcp = StreamableHttpService::new(
        move || {
            Ok(NoCrdServer::new(
                ctx.clone(),
                crate::caller::Transport::Http,
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut mcp = Router::new().nest_service("/mcp", mcp);
    if let Some(verifier) = auth {
        let state = AuthState {
            verifier,
            metrics: metrics.clone(),
            public_url: public_url.clone(),
        };
        // Outermost first: the token check, then the session's owner, then rmcp.
        mcp = mcp
            .layer(middleware::from_fn_with_state(
                crate::sessions::SessionOwners::default(),
                crate::sessions::bind,
            ))
            .layer(middleware::from_fn_with_state(state, require_token));
    }
    let base = opts.base_url.clone();
    let doc_origin = public_url.clone();
    let metadata = move |uri: Uri, headers: HeaderMap| {
        let issuer = issuer.clone();
        let origin = origin_of(doc_origin.as_deref(), &headers);
        async move {
            let suffix = uri
                .path()
                .split_once(auth_http::METADATA_PATH)
                .map_or("", |(_, s)| s);
            let doc = auth_http::protected_resource_metadata(
                &format!("{origin}{suffix}"),
                issuer.as_deref(),
                &["header", "query"],
            );
            axum::Json(doc)
        }
    };
    let inner = Router::new()
        .merge(mcp)
        .route(auth_http::METADATA_PATH, any(metadata.clone()))
        .route(&format!("{}/{{*resource}}", auth_http::METADATA_PATH), any(metadata.clone()))
        .route("/healthz", get(|| async { (StatusCode::OK, [("content-type", "application/json")], "{\"status\":\"ok\"}") }))
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render(publisher.as_ref());
                async move { ([("content-type", "text/plain; version=0.0.4")], text) }
            }),
        )
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
        );
    let app = if base.is_empty() {
        inner
    } else {
        // Everything under the prefix; the metadata also at the root (RFC 9728 clients
        // look for it at the origin, with the resource path as suffix).
        Router::new()
            .nest(&base, inner)
            .route(
                &format!("{}/{{*resource}}", auth_http::METADATA_PATH),
                any(metadata.clone()),
            )
            .route(auth_http::METADATA_PATH, any(metadata))
    };
    app.merge(crate::ui::routes(&base, opts.ui_enabled))
        .layer(cors_layer(&opts.cors))
}

/// Lets a request through to MCP only with a valid token (`Authorization: Bearer`, or
/// `?token=` as the original accepted); the verified identity rides along in the
/// request's extensions, where tools read it. Cookies are not accepted here: a
/// cross-site page could otherwise call tools with them.
async fn require_token(State(state): State<AuthState>, mut req: Request, next: Next) -> Response {
    // CORS preflights carry no credentials.
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let token = auth_http::bearer(req.headers())
        .map(str::to_string)
        .or_else(|| req.uri().query().and_then(auth_http::query_token));
    let verified = match token {
        None => Err(AuthError::Missing),
        Some(t) => state.verifier.verify(&t).await,
    };
    match verified {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(why) => {
            state.metrics.record_auth_failure(why.code());
            unauthorized(&origin_of(state.public_url.as_deref(), req.headers()), &why)
        }
    }
}

fn unauthorized(origin: &str, why: &AuthError) -> Response {
    let url = format!("{origin}{}", auth_http::METADATA_PATH);
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
