//! Every answer the gateway writes itself (rather than the workspace's): a refusal from
//! `reject.rs`, a 401 with its challenge, a redirect, the RFC 9728 document. One writer,
//! so they all carry a length, `no-store` where it matters, and nothing from the request
//! that was not checked first.

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
    /// 200 with the RFC 9728 protected-resource document.
    Metadata(serde_json::Value),
}

impl Answer {
    /// The refusal this answer counts as in logs and metrics (`None`: not a refusal).
    pub fn reject(&self) -> Option<Reject> {
        match self {
            Answer::Reject(r) => Some(*r),
            Answer::Unauthorized { .. } => Some(Reject::Unauthorized),
            Answer::Redirect { .. } | Answer::Metadata(_) => None,
        }
    }

    /// Status, headers and body.
    pub fn parts(&self) -> (u16, Vec<(&'static str, String)>, Bytes) {
        const JSON: (&str, &str) = ("content-type", "application/json");
        let json = || (JSON.0, JSON.1.to_string());
        let no_store = || ("cache-control", "no-store".to_string());
        match self {
            Answer::Reject(r) => {
                let mut headers = vec![json(), no_store()];
                if let Some(secs) = r.retry_after() {
                    headers.push(("retry-after", secs.to_string()));
                }
                (r.status(), headers, r.body())
            }
            Answer::Unauthorized { why, metadata_url } => (
                401,
                vec![
                    json(),
                    no_store(),
                    (
                        "www-authenticate",
                        shared::auth::http::challenge(metadata_url, Some(why)),
                    ),
                ],
                Reject::unauthorized_body(why),
            ),
            Answer::Redirect { location } => {
                (308, vec![("location", location.clone())], Bytes::new())
            }
            Answer::Metadata(doc) => (200, vec![json()], Bytes::from(doc.to_string())),
        }
    }
}

/// Writes `answer` as the whole response.
pub async fn write(session: &mut Session, answer: &Answer) -> Result<()> {
    let (status, headers, body) = answer.parts();
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
        let (status, headers, body) = Answer::Reject(Reject::WorkspaceNotReady).parts();
        assert_eq!(status, 503);
        assert!(headers.contains(&("retry-after", "2".into())));
        assert!(headers.contains(&("cache-control", "no-store".into())));
        assert!(!body.is_empty());
        let (status, headers, _) = Answer::Unauthorized {
            why: AuthError::Missing,
            metadata_url: "http://gw/.well-known/oauth-protected-resource".into(),
        }
        .parts();
        assert_eq!(status, 401);
        assert!(headers.iter().any(|(k, v)| *k == "www-authenticate"
            && v == "Bearer resource_metadata=\"http://gw/.well-known/oauth-protected-resource\""));
        let (status, headers, body) = Answer::Redirect {
            location: "/route/a/".into(),
        }
        .parts();
        assert_eq!((status, body.len()), (308, 0));
        assert_eq!(headers, vec![("location", "/route/a/".to_string())]);
        assert_eq!(Answer::Metadata(serde_json::json!({})).reject(), None);
    }
}
