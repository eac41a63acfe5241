//! Who is calling and whether they own the workspace, for the proxy. Verification is
//! `shared::auth` (so control and gateway agree on every token); this module is the
//! gateway's side: finding the token on a request, deciding ownership, keeping the
//! token away from the upstream, and the cookie that lets a browser keep using a
//! workspace it opened with `?token=`.

use std::sync::Arc;

use http::HeaderMap;
use pingora::http::RequestHeader;
use shared::auth::http::{self as auth_http, TokenSource};
use shared::auth::{AuthError, Identity, Verifier};
use shared::route::Route;

/// The gateway's auth settings (absent when `AUTH_ENABLED` is off).
pub struct GatewayAuth {
    pub verifier: Arc<Verifier>,
    /// `--forward-auth`: pass the token on to the workspace.
    pub forward_auth: bool,
}

impl GatewayAuth {
    /// The caller's identity, where the token came from, and whether the cache knew
    /// it. The cache answers without any crypto for tokens seen before; only a new
    /// token is verified (and then remembered).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        host: Option<&str>,
        query: Option<&str>,
    ) -> Result<(Identity, TokenSource, bool), AuthError> {
        let (token, source) = auth_http::find_token(headers, query).ok_or(AuthError::Missing)?;
        if source == TokenSource::Cookie && !cookie_allowed(headers, host) {
            return Err(AuthError::Missing);
        }
        if let Some(id) = self.verifier.cached(&token) {
            return Ok((id, source, true));
        }
        let id = self.verifier.verify(&token).await?;
        Ok((id, source, false))
    }
}

/// Only the workspace's owner gets through. A workspace without an owner (spawned
/// with auth off) is reachable by nobody while auth is on.
pub fn owns(who: &Identity, route: &Route) -> bool {
    route.owner_sub.as_deref() == Some(&*who.sub)
}

/// Whether the token cookie may authenticate this request (`host`: what it was sent
/// to). Not when a page of another origin sent it: browsers attach `SameSite=Lax`
/// cookies to sub-requests from any page of the same *site*, and every workspace host
/// under one domain is the same site. So a request the browser marks as from another
/// origin (`Sec-Fetch-Site: same-site` or `cross-site`) counts only as a top-level
/// navigation, and any request whose `Origin` is another host (a form POST, a fetch, a
/// WebSocket from a sibling workspace; `null`) does not count at all.
pub fn cookie_allowed(headers: &HeaderMap, host: Option<&str>) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match header("sec-fetch-site") {
        None | Some("same-origin") | Some("none") => {}
        Some(_) if header("sec-fetch-mode") == Some("navigate") => {}
        Some(_) => return false,
    }
    header("origin").is_none_or(|origin| !is_foreign_origin(origin, host))
}

/// Whether `origin` (an `Origin` header) is another host than `host` (what the request
/// addressed). The scheme is not compared: TLS may end before the gateway.
pub fn is_foreign_origin(origin: &str, host: Option<&str>) -> bool {
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    !matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// A `Referer` value without a `token` query parameter (`None`: nothing to change).
pub fn referer_without_token(referer: &str) -> Option<String> {
    let (before, fragment) = match referer.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (referer, None),
    };
    let (path, query) = before.split_once('?')?;
    auth_http::query_token(query)?;
    let mut out = match auth_http::query_without_token(query) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}

/// Whether this looks like a browser opening a page (so a cookie is worth setting).
pub fn is_page_navigation(req: &RequestHeader) -> bool {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    req.method == http::Method::GET
        && (header("sec-fetch-dest") == Some("document")
            || header("accept").is_some_and(|a| a.contains("text/html")))
}

/// Removes the gateway's credentials from what the upstream sees: every
/// `Authorization` value with the Bearer scheme (in any case, followed by spaces or
/// tabs, repeated, even without a token) and the token cookie (the `token` query
/// parameter is dropped with the path). Other schemes are the workspace's and stay.
pub fn strip_credentials(up: &mut RequestHeader) {
    use http::header::{AUTHORIZATION, COOKIE};
    if up.headers.contains_key(AUTHORIZATION) {
        let kept: Vec<http::HeaderValue> = up
            .headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter(|v| !auth_http::is_bearer_scheme(v.as_bytes()))
            .cloned()
            .collect();
        up.remove_header(&AUTHORIZATION);
        for v in kept {
            let _ = up.append_header(AUTHORIZATION, v);
        }
    }
    if !up.headers.contains_key(COOKIE) {
        return;
    }
    let cookies: Vec<String> = up
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    if cookies.is_empty() {
        return;
    }
    up.remove_header(&COOKIE);
    let kept: Vec<String> = cookies
        .iter()
        .filter_map(|c| auth_http::cookie_header_without(c, auth_http::TOKEN_COOKIE))
        .collect();
    if !kept.is_empty() {
        // One header, as HTTP/1.1 upstreams expect.
        let _ = up.insert_header("cookie", kept.join("; "));
    }
}

/// The upstream path and query without the `token` parameter (the same string when the
/// query has none, which is nearly every request).
pub fn strip_query_token(upstream: String) -> String {
    let Some((path, query)) = upstream.split_once('?') else {
        return upstream;
    };
    if !query.split('&').any(auth_http::is_token_pair) {
        return upstream;
    }
    match auth_http::query_without_token(query) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap_or_else(|e| panic!("{e}")));
        }
        h
    }

    #[test]
    fn a_cookie_counts_only_from_its_own_origin_or_a_navigation() {
        let host = Some("alice.ws.test");
        let cases: [(&[(&'static str, &str)], bool); 11] = [
            (&[], true),
            (
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("sec-fetch-mode", "cors"),
                ],
                true,
            ),
            (
                &[("sec-fetch-site", "none"), ("sec-fetch-mode", "navigate")],
                true,
            ),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("sec-fetch-mode", "navigate"),
                ],
                true,
            ),
            (
                &[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "cors")],
                false,
            ),
            (
                &[
                    ("sec-fetch-site", "same-site"),
                    ("sec-fetch-mode", "websocket"),
                ],
                false,
            ),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("sec-fetch-mode", "no-cors"),
                ],
                false,
            ),
            (&[("origin", "http://alice.ws.test")], true),
            (&[("origin", "https://ALICE.ws.test")], true),
            // A form POST from a sibling is a navigation, but its Origin gives it away.
            (
                &[
                    ("sec-fetch-site", "same-site"),
                    ("sec-fetch-mode", "navigate"),
                    ("origin", "http://mallory.ws.test"),
                ],
                false,
            ),
            (&[("origin", "null")], false),
        ];
        for (headers, allowed) in cases {
            assert_eq!(cookie_allowed(&map(headers), host), allowed, "{headers:?}");
        }
        assert!(!cookie_allowed(&map(&[("origin", "http://x")]), None));
    }

    #[test]
    fn only_the_requests_own_host_is_not_foreign() {
        assert!(!is_foreign_origin(
            "http://demo.ws.test",
            Some("demo.ws.test")
        ));
        assert!(!is_foreign_origin(
            "https://DEMO.ws.test",
            Some("demo.ws.test")
        ));
        assert!(is_foreign_origin(
            "http://mallory.ws.test",
            Some("demo.ws.test")
        ));
        assert!(is_foreign_origin("null", Some("demo.ws.test")));
        assert!(is_foreign_origin("http://demo.ws.test", None));
    }

    #[test]
    fn the_referer_loses_its_token() {
        assert_eq!(
            referer_without_token("http://a.test/p?token=t&x=1#f").as_deref(),
            Some("http://a.test/p?x=1#f")
        );
        assert_eq!(
            referer_without_token("http://a.test/p?token=t").as_deref(),
            Some("http://a.test/p")
        );
        assert_eq!(referer_without_token("http://a.test/p?x=1"), None);
        assert_eq!(referer_without_token("http://a.test/p"), None);
    }

    fn req(method: &str, headers: &[(&'static str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/x", None).unwrap_or_else(|e| panic!("{e}"));
        for (k, v) in headers {
            r.append_header(*k, *v).unwrap_or_else(|e| panic!("{e}"));
        }
        r
    }

    #[test]
    fn credentials_are_stripped_and_the_rest_kept() {
        let mut r = req(
            "GET",
            &[
                ("authorization", "Bearer t0k"),
                ("cookie", "a=1; nocr_token=t0k"),
                ("cookie", "b=2"),
                ("x-other", "kept"),
            ],
        );
        strip_credentials(&mut r);
        assert!(r.headers.get("authorization").is_none());
        assert_eq!(r.headers.get_all("cookie").iter().count(), 1);
        assert_eq!(
            r.headers.get("cookie").map(|v| v.as_bytes()),
            Some(&b"a=1; b=2"[..])
        );
        assert!(r.headers.get("x-other").is_some());

        let mut sneaky = req(
            "GET",
            &[
                ("authorization", "Bearer\tt0k"),
                ("authorization", "BEARER  t0k"),
                ("authorization", "bearer"),
                ("authorization", "Basic dTpw"),
            ],
        );
        strip_credentials(&mut sneaky);
        let left: Vec<&[u8]> = sneaky
            .headers
            .get_all("authorization")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(
            left,
            [&b"Basic dTpw"[..]],
            "every bearer shape goes, Basic stays"
        );

        let mut basic = req(
            "GET",
            &[("authorization", "Basic dTpw"), ("cookie", "nocr_token=t")],
        );
        strip_credentials(&mut basic);
        assert!(
            basic.headers.get("authorization").is_some(),
            "not ours: kept"
        );
        assert!(basic.headers.get("cookie").is_none());
    }

    #[test]
    fn the_query_token_is_dropped() {
        for (from, to) in [
            ("/a?token=x&b=1", "/a?b=1"),
            ("/a?b=1&token=x", "/a?b=1"),
            ("/a?token=x", "/a"),
            ("/a?token", "/a"),
            ("/a?&token=x&", "/a"),
            ("/a", "/a"),
            ("/a?tokenish=1", "/a?tokenish=1"),
            ("/a?x=token=1", "/a?x=token=1"),
        ] {
            assert_eq!(strip_query_token(from.to_string()), to, "{from}");
        }
    }

    #[test]
    fn navigation_is_a_get_for_a_document() {
        assert!(is_page_navigation(&req(
            "GET",
            &[("accept", "text/html,*/*")]
        )));
        assert!(is_page_navigation(&req(
            "GET",
            &[("sec-fetch-dest", "document")]
        )));
        assert!(!is_page_navigation(&req("GET", &[("accept", "*/*")])));
        assert!(!is_page_navigation(&req(
            "POST",
            &[("accept", "text/html")]
        )));
    }

    #[test]
    fn only_the_owner_passes() {
        let route = |owner: Option<&str>| Route {
            workspace_id: shared::ids::WorkspaceId::parse("w1").unwrap_or_else(|e| panic!("{e}")),
            pod_uid: "u".into(),
            namespace: "default".into(),
            state: shared::route::RouteState::Ready,
            addr: None,
            owner_sub: owner.map(str::to_string),
            port_is_default: false,
            web: Default::default(),
        };
        let alice = Identity::user("alice", u64::MAX);
        assert!(owns(&alice, &route(Some("alice"))));
        assert!(!owns(&alice, &route(Some("bob"))));
        assert!(
            !owns(&alice, &route(None)),
            "nobody owns an ownerless workspace"
        );
    }
}
