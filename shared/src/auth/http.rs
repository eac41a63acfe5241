//! Tokens on HTTP requests, shared by the gateway and control so both read and strip
//! them the same way: `Authorization: Bearer`, then `?token=`, then the `nocr_token`
//! cookie (browsers and WebSocket upgrades cannot set headers). Also the RFC 9728
//! protected-resource document and the 401 challenge pointing at it.

use http::HeaderMap;
use serde_json::{Value, json};

/// The cookie holding a workspace's token (the original's name).
pub const TOKEN_COOKIE: &str = "nocr_token";
/// Path of the RFC 9728 document.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Query,
    Cookie,
}

/// The token of a request and where it came from.
pub fn find_token(headers: &HeaderMap, query: Option<&str>) -> Option<(String, TokenSource)> {
    if let Some(t) = bearer(headers) {
        return Some((t.to_string(), TokenSource::Header));
    }
    if let Some(t) = query.and_then(query_token) {
        return Some((t, TokenSource::Query));
    }
    cookie(headers, TOKEN_COOKIE).map(|t| (t.to_string(), TokenSource::Cookie))
}

/// `Authorization: Bearer <t>` (scheme case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The `token` query parameter, percent-decoded.
pub fn query_token(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(percent_decode)
        .filter(|t| !t.is_empty())
}

/// A cookie's value from every `Cookie` header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The query without its `token` parameter (`None` when nothing is left).
pub fn query_without_token(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("token=") && *p != "token")
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// A `Cookie` header value without the named cookie (`None` when nothing is left).
pub fn cookie_header_without(value: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.split_once('=').is_none_or(|(k, _)| k != name))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The RFC 9728 protected-resource document for `resource` (an absolute URL).
pub fn protected_resource_metadata(
    resource: &str,
    issuer: Option<&str>,
    methods: &[&str],
) -> Value {
    json!({
        "resource": resource,
        "authorization_servers": issuer.into_iter().collect::<Vec<_>>(),
        "bearer_methods_supported": methods,
        "scopes_supported": ["mcp"],
        "resource_name": "no-crd",
    })
}

/// The `WWW-Authenticate` value of a 401: where the metadata is, and (for a token that
/// was sent but refused) `error="invalid_token"` with the reason.
pub fn challenge(metadata_url: &str, refused: Option<&super::AuthError>) -> String {
    match refused {
        None | Some(super::AuthError::Missing) => {
            format!("Bearer resource_metadata=\"{metadata_url}\"")
        }
        Some(e) => format!(
            "Bearer resource_metadata=\"{metadata_url}\", error=\"invalid_token\", error_description=\"{}\"",
            e.to_string().replace(['"', '\\'], "'")
        ),
    }
}

/// `scheme://host` of a request as its client addressed it: the `Host` header, else the
/// URI's authority (HTTP/2 sends `:authority`). For documents and links, never for
/// security decisions.
pub fn origin(headers: &HeaderMap, authority: Option<&str>, tls: bool) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(authority)
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("{}://{host}", if tls { "https" } else { "http" })
}

/// The `Set-Cookie` value keeping a workspace's token for its own pages and sub-requests.
pub fn token_cookie(path: &str, token: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{TOKEN_COOKIE}={token}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[test]
    fn header_then_query_then_cookie() {
        let h = headers(&[
            ("authorization", "bearer  abc "),
            ("cookie", "nocr_token=ck"),
        ]);
        assert_eq!(
            find_token(&h, Some("token=q")),
            Some(("abc".into(), TokenSource::Header))
        );
        let h = headers(&[("cookie", "a=1; nocr_token=ck")]);
        assert_eq!(
            find_token(&h, Some("x=1&token=q%2Ev")),
            Some(("q.v".into(), TokenSource::Query))
        );
        assert_eq!(
            find_token(&h, Some("x=1")),
            Some(("ck".into(), TokenSource::Cookie))
        );
        let h = headers(&[
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("cookie", "nocr_token="),
        ]);
        assert_eq!(find_token(&h, Some("token=")), None);
        assert_eq!(find_token(&HeaderMap::new(), None), None);
    }

    #[test]
    fn stripping_keeps_everything_else() {
        assert_eq!(
            query_without_token("a=1&token=x&b=2").as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(query_without_token("token=x"), None);
        assert_eq!(query_without_token("tokens=1").as_deref(), Some("tokens=1"));
        assert_eq!(
            cookie_header_without("a=1; nocr_token=t; b=2", TOKEN_COOKIE).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(cookie_header_without("nocr_token=t", TOKEN_COOKIE), None);
    }

    #[test]
    fn challenge_names_the_metadata_and_the_reason() {
        let url = "http://gw/.well-known/oauth-protected-resource";
        assert_eq!(
            challenge(url, None),
            format!("Bearer resource_metadata=\"{url}\"")
        );
        let c = challenge(url, Some(&super::super::AuthError::Expired));
        assert!(
            c.contains("error=\"invalid_token\"") && c.contains("expired"),
            "{c}"
        );
        let cookie = token_cookie("/route/w1/", "t", 60, true);
        assert!(cookie.contains("Path=/route/w1/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"));
        let doc = protected_resource_metadata("http://gw", Some("https://idp"), &["header"]);
        assert_eq!(doc["authorization_servers"][0], "https://idp");
    }
}
