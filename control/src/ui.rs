//! The web UI (the Pod Manager): three files under `control/ui/`, embedded in the binary
//! so running the product needs no Node toolchain. Served over HTTP at `/`, `/ui` and
//! `/ui/` (under `--base-url`), with its script and style as separate files so a strict
//! Content-Security-Policy holds; and as the MCP resource `ui://nogoo9/app`, one
//! self-contained document an MCP host can render in a sandboxed frame.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub const RESOURCE_URI: &str = "ui://nogoo9/app";
/// The MCP Apps MIME type hosts look for.
pub const RESOURCE_MIME: &str = "text/html;profile=mcp-app";
pub const RESOURCE_NAME: &str = "nocrd9 Pod Manager";

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// The page: scripts only from our own origin, calls only to our own origin, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The HTML served over HTTP: assets linked under `base_url` (already normalized).
pub fn http_page(base_url: &str) -> String {
    let base = escape_attr(base_url);
    INDEX
        .replace("{{BASE_URL}}", &base)
        .replace("{{EMBEDDED}}", "false")
        .replace(
            "{{STYLE}}",
            &format!("<link rel=\"stylesheet\" href=\"{base}/ui/app.css\">"),
        )
        .replace(
            "{{SCRIPT}}",
            &format!("<script src=\"{base}/ui/app.js\"></script>"),
        )
}

/// The self-contained document behind `ui://nogoo9/app`: style and script inline (an
/// MCP host renders it from the resource text, with no server to fetch assets from).
pub fn resource_page() -> String {
    INDEX
        .replace("{{BASE_URL}}", "")
        .replace("{{EMBEDDED}}", "true")
        .replace("{{STYLE}}", &format!("<style>\n{STYLE}</style>"))
        .replace("{{SCRIPT}}", &format!("<script>\n{SCRIPT}</script>"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The page's paths under `base_url`: the base itself with and without its slash, `ui`
/// and `ui/`; then the two assets.
fn page_paths(base_url: &str) -> Vec<String> {
    let mut paths = vec![format!("{base_url}/")];
    if !base_url.is_empty() {
        paths.push(base_url.to_string());
    }
    paths.push(format!("{base_url}/ui"));
    paths.push(format!("{base_url}/ui/"));
    paths
}

/// The page at `<base>`, `<base>/`, `<base>/ui`, `<base>/ui/`, and its assets at
/// `<base>/ui/app.js` and `<base>/ui/app.css` (full paths: merged, not nested, so the
/// bare prefix with a trailing slash is served too). When the UI is disabled the same
/// paths answer 404 saying so.
pub fn routes(base_url: &str, enabled: bool) -> Router {
    let script_path = format!("{base_url}/ui/app.js");
    let style_path = format!("{base_url}/ui/app.css");
    if !enabled {
        let off = || async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({
                    "error": "not_found",
                    "message": "the web UI is disabled on this server (UI_ENABLED=false)"
                })),
            )
        };
        return page_paths(base_url)
            .into_iter()
            .chain([script_path, style_path])
            .fold(Router::new(), |r, p| r.route(&p, get(off)));
    }
    let page = http_page(base_url);
    let html = move || {
        let page = page.clone();
        async move {
            (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-cache"),
                    (header::CONTENT_SECURITY_POLICY, CSP),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    // Workspace links carry the token in their query: never send it on.
                    (header::REFERRER_POLICY, "no-referrer"),
                ],
                page,
            )
                .into_response()
        }
    };
    page_paths(base_url)
        .into_iter()
        .fold(Router::new(), |r, p| r.route(&p, get(html.clone())))
        .route(
            &script_path,
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            &style_path,
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_page_links_its_assets_under_the_base_url() {
        let page = http_page("/nocrd9");
        assert!(page.contains(r#"<meta name="nocrd9-base-url" content="/nocrd9">"#));
        assert!(page.contains(r#"src="/nocrd9/ui/app.js""#));
        assert!(page.contains(r#"href="/nocrd9/ui/app.css""#));
        assert!(!page.contains("{{"), "a placeholder was left: {page}");
    }

    #[test]
    fn the_base_url_cannot_break_out_of_its_attribute() {
        let page = http_page("/a\"><script>alert(1)</script>");
        assert!(!page.contains("<script>alert(1)"));
    }

    #[test]
    fn the_resource_is_one_self_contained_document() {
        let page = resource_page();
        assert!(page.contains(r#"content="true""#));
        assert!(!page.contains("src=\"/ui/app.js\"") && !page.contains("app.css\""));
        assert!(page.contains("class HttpTransport") && page.contains("--accent"));
        assert!(!page.contains("{{"), "a placeholder was left");
        // Inlined text must not end its own element early.
        assert!(!SCRIPT.contains("</script"), "app.js contains </script");
        assert!(!STYLE.contains("</style"), "app.css contains </style");
    }
}
