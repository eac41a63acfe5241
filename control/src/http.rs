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

use crate::context::Context;
use crate::mcp::NoCrdServer;
use crate::metrics::ControlMetrics;

/// `--base-url` as a clean prefix: `""` or `/a/b` (leading slash, no trailing one).
pub fn normalize_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        });
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "--base-url {raw:?} must be a path like /nocrd9 (letters, digits, -._~ between slashes)"
        ))
    }
}

/// Parsed CORS flags.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `None`: any origin (`*`).
    pub origins: Option<Vec<HeaderValue>>,
    pub methods: Vec<Method>,
    pub headers: Vec<HeaderName>,
}

impl Cors {
    pub fn parse(origin: &str, methods: &str, headers: &str) -> Result<Cors, String> {
        let list = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let origins = if origin.trim() == "*" {
            None
        } else {
            Some(
                list(origin)
                    .iter()
                    .map(|o| {
                        if !(o.starts_with("http://") || o.starts_with("https://")) {
                            return Err(format!(
                                "--cors-origin {o:?} must be `*` or an http(s):// origin"
                            ));
                        }
                        HeaderValue::from_str(o)
                            .map_err(|_| format!("--cors-origin {o:?} is not a valid origin"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let methods = list(methods)
            .iter()
            .map(|m| {
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("--cors-methods: {m:?} is not an HTTP method"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = list(headers)
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| format!("--cors-headers: {h:?} is not a header name"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cors {
            origins,
            methods,
            headers,
        })
    }

    fn layer(&self) -> CorsLayer {
        let layer = CorsLayer::new()
            .allow_methods(self.methods.clone())
            .allow_headers(self.headers.clone())
            .expose_headers([HeaderName::from_static("mcp-session-id")]);
        match &self.origins {
            None => layer.allow_origin(AllowOrigin::any()),
            Some(list) => layer.allow_origin(AllowOrigin::list(list.clone())),
        }
    }
}

/// What the HTTP server is configured with beyond the tools' context.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub base_url: String,
    pub cors: Cors,
    /// `None`: the Host header is not checked.
    pub allowed_hosts: Option<Vec<String>>,
    /// Serve the web UI (`UI_ENABLED`).
    pub ui_enabled: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            base_url: String::new(),
            cors: Cors {
                origins: None,
                methods: vec![Method::GET, Method::POST, Method::DELETE, Method::OPTIONS],
                headers: vec![
                    HeaderName::from_static("content-type"),
                    HeaderName::from_static("authorization"),
                    HeaderName::from_static("mcp-protocol-version"),
                    HeaderName::from_static("mcp-session-id"),
                ],
            },
            allowed_hosts: Some(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]),
            ui_enabled: true,
        }
    }
}

#[derive(Clone)]
struct AuthState {
    verifier: Arc<Verifier>,
    metrics: Arc<ControlMetrics>,
}

pub fn router(
    ctx: Context,
    synced: watch::Receiver<bool>,
    shutdown: CancellationToken,
    opts: &HttpOptions,
) -> Router {
    let auth = ctx.auth.clone();
    let metrics = ctx.metrics.clone();
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
        move || Ok(NoCrdServer::new(ctx.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut mcp = Router::new().nest_service("/mcp", mcp);
    if let Some(verifier) = auth {
        let state = AuthState {
            verifier,
            metrics: metrics.clone(),
        };
        mcp = mcp.layer(middleware::from_fn_with_state(state, require_token));
    }
    let base = opts.base_url.clone();
    let metadata = move |uri: Uri, headers: HeaderMap| {
        let issuer = issuer.clone();
        async move {
            let suffix = uri
                .path()
                .split_once(auth_http::METADATA_PATH)
                .map_or("", |(_, s)| s);
            let doc = auth_http::protected_resource_metadata(
                &format!("{}{suffix}", auth_http::origin(&headers, None, false)),
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
        .layer(opts.cors.layer())
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
            unauthorized(req.headers(), &why)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized_or_refused() {
        assert_eq!(normalize_base_url("/nocrd9/").as_deref(), Ok("/nocrd9"));
        assert_eq!(normalize_base_url("/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(normalize_base_url("/").as_deref(), Ok(""));
        for bad in ["nocrd9", "/a//b", "/a/../b", "/a b", "/a?x"] {
            assert!(normalize_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cors_flags_are_checked() {
        assert!(Cors::parse("*", "GET, POST", "Content-Type").is_ok_and(|c| c.origins.is_none()));
        let c = Cors::parse("https://a.example, http://localhost:5173", "GET", "x-a")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.origins.map(|o| o.len()), Some(2));
        assert!(
            Cors::parse("a.example", "GET", "x")
                .unwrap_err()
                .contains("--cors-origin")
        );
        assert!(
            Cors::parse("*", "GE T", "x")
                .unwrap_err()
                .contains("--cors-methods")
        );
        assert!(
            Cors::parse("*", "GET", "bad header")
                .unwrap_err()
                .contains("--cors-headers")
        );
    }
}
