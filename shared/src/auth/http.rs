//! Tokens on HTTP requests, shared by the gateway and control so both read and strip
//! them the same way: `Authorization: Bearer`, then `?token=`, then the `nocr_token`
//! cookie (browsers and WebSocket upgrades cannot set headers). Also the RFC 9728
//! protected-resource document and the 401 challenge pointing at it.

use std::borrow::Cow;

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
///
/// Borrowed from the request where it can be (every request with auth on comes here):
/// only a percent-decoded query token is a new string.
pub fn find_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Option<(Cow<'a, str>, TokenSource)> {
    if let Some(t) = bearer(headers) {
        return Some((Cow::Borrowed(t), TokenSource::Header));
    }
    if let Some(t) = query.and_then(query_token) {
        return Some((Cow::Owned(t), TokenSource::Query));
    }
    cookie(headers, TOKEN_COOKIE).map(|t| (Cow::Borrowed(t), TokenSource::Cookie))
}

/// `Authorization: Bearer <t>` (scheme case-insensitive, spaces or tabs after it). With
/// several `Authorization` headers, the first bearer one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(bearer_value)
}

/// The token of one `Authorization` value if its scheme is Bearer.
pub fn bearer_value(value: &str) -> Option<&str> {
    let v = value.trim_matches([' ', '\t']);
    let split = v.find([' ', '\t'])?;
    let (scheme, token) = v.split_at(split);
    let token = token.trim_matches([' ', '\t']);
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether an `Authorization` value uses the Bearer scheme at all (even malformed, even
/// with no token): what the gateway strips before the upstream when tokens stay with it.
pub fn is_bearer_scheme(value: &[u8]) -> bool {
    let start = value
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(value.len());
    let v = &value[start..];
    v.len() >= 6
        && v[..6].eq_ignore_ascii_case(b"bearer")
        && v.get(6)
            .is_none_or(|b| *b == b' ' || *b == b'\t' || *b == b'=')
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
        .filter(|p| !p.is_empty() && !is_token_pair(p))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Whether one `&`-separated query pair is the `token` parameter (with or without a value).
pub fn is_token_pair(pair: &str) -> bool {
    pair == "token" || pair.starts_with("token=")
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
/// URI's authority (HTTP/2 sends `:authority`), if it is a well-formed host
/// (`name[:port]`, `[v6]:port`); anything else is `localhost`, so nothing a client sends
/// can break out of the quoted URL in a challenge or a document. For documents and
/// links, never for security decisions.
pub fn origin(headers: &HeaderMap, authority: Option<&str>, tls: bool) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(authority)
        .filter(|h| is_host(h))
        .unwrap_or("localhost");
    format!("{}://{host}", if tls { "https" } else { "http" })
}

/// A DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port.
pub fn is_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port))
            if !host.ends_with(':') && (h.starts_with('[') == host.ends_with(']')) =>
        {
            (host, Some(port))
        }
        _ => (h, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        !v6.is_empty()
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    host_ok && port_ok
}

/// The `Set-Cookie` value keeping a workspace's token for its own pages and sub-requests.
pub fn token_cookie(
    path: &str,
    token: &str,
    max_age_secs: u64,
    secure: bool,
    same_site: SameSite,
) -> String {
    format!(
        "{TOKEN_COOKIE}={token}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite={}{}",
        match same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
        },
        if secure { "; Secure" } else { "" }
    )
}

/// The token cookie's `SameSite`: `Strict` on the shared path-routing origin; `Lax` on a
/// workspace's own host, so a link from elsewhere (the UI) opens it signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
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
    fn bearer_tokens_in_every_shape() {
        for v in ["Bearer abc", "bearer\tabc", "BEARER  abc ", " Bearer\t abc"] {
            assert_eq!(bearer_value(v), Some("abc"), "{v:?}");
        }
        for v in ["Bearerabc", "Basic abc", "Bearer", "Bearer \t"] {
            assert_eq!(bearer_value(v), None, "{v:?}");
        }
        for v in ["Bearer x", "bearer\tx", "BEARER", "  bearer", "Bearer=x"] {
            assert!(is_bearer_scheme(v.as_bytes()), "{v:?}");
        }
        for v in ["Basic x", "Bearerx", "Bear x", ""] {
            assert!(!is_bearer_scheme(v.as_bytes()), "{v:?}");
        }
        let h = headers(&[
            ("authorization", "Basic dTpw"),
            ("authorization", "Bearer second"),
        ]);
        assert_eq!(bearer(&h), Some("second"), "the bearer one of several");
    }

    #[test]
    fn only_well_formed_hosts_reach_documents() {
        for ok in [
            "gw.example:8080",
            "127.0.0.1",
            "[::1]:3000",
            "localhost",
            "a-b.c",
        ] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in [
            "evil\"x",
            "a b",
            "gw/x",
            "",
            "gw:",
            "gw:99999x",
            "[::1",
            "x@y",
            "gw:80:80",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
        let h = headers(&[("host", "evil\", error=\"x")]);
        assert_eq!(origin(&h, None, false), "http://localhost");
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
        let cookie = token_cookie("/route/w1/", "t", 60, true, SameSite::Strict);
        assert!(cookie.contains("Path=/route/w1/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"));
        let host = token_cookie("/", "t", 60, false, SameSite::Lax);
        assert_eq!(
            host,
            "nocr_token=t; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        let doc = protected_resource_metadata("http://gw", Some("https://idp"), &["header"]);
        assert_eq!(doc["authorization_servers"][0], "https://idp");
    }
}
