//! Every answer the gateway writes itself (rather than the workspace's): a refusal from
//! `reject.rs`, a 401 with its challenge, a redirect, the sign-in redirect, the RFC 9728
//! document. One writer, so they all carry a length, `no-store` where it matters, and
//! nothing from the request that was not checked first. Refusals are JSON for API
//! clients and a small HTML page for browsers (by `Accept`), with the same status.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use shared::auth::AuthError;

use crate::reject::Reject;

/// What the gateway answers instead of proxying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// One of our refusals.
    Reject(Reject),
    /// 401: no usable token, and why; the challenge points at `metadata_url`.
    Unauthorized {
        why: AuthError,
        metadata_url: String,
    },
    /// 308 to `location` (the same request, another path).
    Redirect { location: String },
    /// 303 to `location` (the page without its `token`), setting the token `cookie`.
    SignIn { location: String, cookie: String },
    /// 200 with the RFC 9728 protected-resource document.
    Metadata(serde_json::Value),
}

impl Answer {
    /// The refusal this answer counts as in logs and metrics (`None`: not a refusal).
    pub fn reject(&self) -> Option<Reject> {
        match self {
            Answer::Reject(r) => Some(*r),
            Answer::Unauthorized { .. } => Some(Reject::Unauthorized),
            Answer::Redirect { .. } | Answer::SignIn { .. } | Answer::Metadata(_) => None,
        }
    }

    /// Status, headers and body; refusals as an HTML page when `html`.
    pub fn parts(&self, html: bool) -> (u16, Vec<(&'static str, String)>, Bytes) {
        let no_store = || ("cache-control", "no-store".to_string());
        let typed =
            |status: u16, json: Bytes, message: &str| -> (Vec<(&'static str, String)>, Bytes) {
                if html {
                    (
                        vec![
                            ("content-type", "text/html; charset=utf-8".to_string()),
                            ("content-security-policy", "default-src 'none'".to_string()),
                        ],
                        html_page(status, message),
                    )
                } else {
                    (vec![("content-type", "application/json".to_string())], json)
                }
            };
        match self {
            Answer::Reject(r) => {
                let (mut headers, body) = typed(r.status(), r.body(), r.message());
                headers.push(no_store());
                if let Some(secs) = r.retry_after() {
                    headers.push(("retry-after", secs.to_string()));
                }
                (r.status(), headers, body)
            }
            Answer::Unauthorized { why, metadata_url } => {
                let (mut headers, body) =
                    typed(401, Reject::unauthorized_body(why), &why.to_string());
                headers.push(no_store());
                headers.push((
                    "www-authenticate",
                    shared::auth::http::challenge(metadata_url, Some(why)),
                ));
                (401, headers, body)
            }
            Answer::Redirect { location } => {
                (308, vec![("location", location.clone())], Bytes::new())
            }
            Answer::SignIn { location, cookie } => (
                303,
                vec![
                    ("location", location.clone()),
                    ("set-cookie", cookie.clone()),
                    ("referrer-policy", "no-referrer".to_string()),
                    no_store(),
                ],
                Bytes::new(),
            ),
            Answer::Metadata(doc) => (
                200,
                vec![("content-type", "application/json".to_string())],
                Bytes::from(doc.to_string()),
            ),
        }
    }
}

/// Whether the client prefers a page (a browser) to JSON.
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("text/html"))
}

/// A small page for browsers: the status and what it means (our fixed words, escaped
/// anyway).
fn html_page(status: u16, message: &str) -> Bytes {
    let title = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    Bytes::from(format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{status} {title}</title>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{status} {title}</h1><p>{}</p></body></html>\n",
        escape(message)
    ))
}

/// Writes `answer` as the whole response (`html`: a page rather than JSON).
pub async fn write(session: &mut Session, answer: &Answer, html: bool) -> Result<()> {
    let (status, headers, body) = answer.parts(html);
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 1))?;
    for (name, value) in headers {
        resp.insert_header(name, value)?;
    }
    resp.insert_header("content-length", body.len().to_string())?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_their_headers() {
        let (status, headers, body) = Answer::Reject(Reject::WorkspaceNotReady).parts(false);
        assert_eq!(status, 503);
        assert!(headers.contains(&("retry-after", "2".into())));
        assert!(headers.contains(&("cache-control", "no-store".into())));
        assert!(!body.is_empty());
        let (status, headers, _) = Answer::Unauthorized {
            why: AuthError::Missing,
            metadata_url: "http://gw/.well-known/oauth-protected-resource".into(),
        }
        .parts(false);
        assert_eq!(status, 401);
        assert!(headers.iter().any(|(k, v)| *k == "www-authenticate"
            && v == "Bearer resource_metadata=\"http://gw/.well-known/oauth-protected-resource\""));
        let (status, headers, body) = Answer::Redirect {
            location: "/route/a/".into(),
        }
        .parts(false);
        assert_eq!((status, body.len()), (308, 0));
        assert_eq!(headers, vec![("location", "/route/a/".to_string())]);
        assert_eq!(Answer::Metadata(serde_json::json!({})).reject(), None);
    }

    #[test]
    fn browsers_get_a_page_with_the_same_status() {
        let (status, headers, body) = Answer::Reject(Reject::WorkspaceNotFound).parts(true);
        assert_eq!(status, 404);
        assert!(headers.contains(&("content-type", "text/html; charset=utf-8".into())));
        let page = String::from_utf8_lossy(&body);
        assert!(
            page.contains("<h1>404 Not Found</h1>") && page.contains("no workspace with this id"),
            "{page}"
        );
        let (status, headers, body) = Answer::Unauthorized {
            why: AuthError::Missing,
            metadata_url: "http://gw/m".into(),
        }
        .parts(true);
        assert_eq!(status, 401);
        assert!(headers.iter().any(|(k, _)| *k == "www-authenticate"));
        assert!(String::from_utf8_lossy(&body).contains("401 Unauthorized"));
        assert!(wants_html(Some(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(None));
    }

    #[test]
    fn the_sign_in_redirect_sets_the_cookie_and_no_referrer() {
        let (status, headers, body) = Answer::SignIn {
            location: "/a?b=1".into(),
            cookie: "nocr_token=t; Path=/".into(),
        }
        .parts(true);
        assert_eq!((status, body.len()), (303, 0));
        assert!(headers.contains(&("location", "/a?b=1".into())));
        assert!(headers.contains(&("set-cookie", "nocr_token=t; Path=/".into())));
        assert!(headers.contains(&("referrer-policy", "no-referrer".into())));
    }
}
