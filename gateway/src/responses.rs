//! What a workspace's response headers may say to the browser. Pure.
//!
//! - `Set-Cookie` never names the gateway's token cookie (a workspace could otherwise
//!   plant a token of its choosing in its visitors' browsers) and never carries `Domain`
//!   (a cookie stays on the host that set it, so one workspace's cookie is never sent to
//!   another workspace's host).
//! - Under path routing (unless the template says `nogoo9/rewrite-responses: "false"`),
//!   `Location` (absolute paths and URLs to the public host) and cookie `Path`s go under
//!   `/route/<id>/`, so an app written for `/` keeps working behind the prefix and its
//!   cookies stay in its own prefix.
//! - A `Location` to the pod's own address (apps that see `Host: podIP:port`) becomes the
//!   public URL.
//! - `Access-Control-Allow-Credentials` is dropped for another origin: no page of another
//!   workspace can read this one with the visitor's credentials.

use shared::auth::http::TOKEN_COOKIE;

/// What the rewriting needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite<'a> {
    /// `/route/<id>` when path-routed with rewriting on.
    pub prefix: Option<&'a str>,
    /// The `Host` the client addressed.
    pub public_host: Option<&'a str>,
    /// `http` or `https`, as the client sees the gateway.
    pub public_scheme: &'a str,
    /// `podIP:port` the request went to.
    pub pod_authority: Option<&'a str>,
}

/// The `Location` to send instead (`None`: unchanged).
pub fn location(value: &str, r: &Rewrite<'_>) -> Option<String> {
    let under_prefix = |path: &str| match r.prefix {
        Some(p) if !(path == p || path.starts_with(&format!("{p}/"))) => format!("{p}{path}"),
        _ => path.to_string(),
    };
    if let Some((scheme, rest)) = split_absolute(value) {
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let public = r
            .public_host
            .is_some_and(|h| h.eq_ignore_ascii_case(authority));
        let pod = r.pod_authority.is_some_and(|p| {
            p.eq_ignore_ascii_case(authority)
                || (p.strip_suffix(":80") == Some(authority) && scheme != "https")
        });
        let new = if public {
            format!("{scheme}{authority}{}", under_prefix(&path))
        } else if pod {
            let host = r.public_host?;
            format!("{}://{host}{}", r.public_scheme, under_prefix(&path))
        } else {
            return None;
        };
        return (new != value).then_some(new);
    }
    if value.starts_with('/') {
        let new = under_prefix(value);
        return (new != value).then_some(new);
    }
    None
}

/// `("http://", "host/path")` for an absolute or scheme-relative URL.
fn split_absolute(value: &str) -> Option<(&str, &str)> {
    for scheme in ["http://", "https://", "//"] {
        if value.len() >= scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some((&value[..scheme.len()], &value[scheme.len()..]));
        }
    }
    None
}

/// The `Set-Cookie` to send instead: `None` drops it (the token cookie's name).
pub fn set_cookie(value: &str, prefix: Option<&str>) -> Option<String> {
    let mut parts = value.split(';');
    let pair = parts.next().unwrap_or_default();
    let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
    if name == TOKEN_COOKIE {
        return None;
    }
    let mut out = vec![pair.to_string()];
    for attr in parts {
        let trimmed = attr.trim();
        let (key, val) = trimmed.split_once('=').unwrap_or((trimmed, ""));
        if key.eq_ignore_ascii_case("domain") {
            continue;
        }
        if key.eq_ignore_ascii_case("path")
            && let Some(p) = prefix
            && val.starts_with('/')
            && !(val == p || val.starts_with(&format!("{p}/")))
        {
            out.push(format!(" Path={p}{val}"));
            continue;
        }
        out.push(attr.to_string());
    }
    Some(out.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: Rewrite<'static> = Rewrite {
        prefix: Some("/route/demo"),
        public_host: Some("gw.test:8080"),
        public_scheme: "http",
        pod_authority: Some("10.0.0.7:3000"),
    };
    const HOST: Rewrite<'static> = Rewrite {
        prefix: None,
        public_host: Some("demo.ws.test"),
        public_scheme: "https",
        pod_authority: Some("10.0.0.7:3000"),
    };

    #[test]
    fn locations_stay_under_the_prefix_and_on_the_public_host() {
        let cases: [(&str, &Rewrite<'_>, Option<&str>); 12] = [
            ("/login", &PATH, Some("/route/demo/login")),
            ("/", &PATH, Some("/route/demo/")),
            (
                "/login?next=/a#f",
                &PATH,
                Some("/route/demo/login?next=/a#f"),
            ),
            ("/route/demo/login", &PATH, None),
            ("/route/demo", &PATH, None),
            ("/route/demonic", &PATH, Some("/route/demo/route/demonic")),
            ("login", &PATH, None),
            (
                "http://gw.test:8080/login",
                &PATH,
                Some("http://gw.test:8080/route/demo/login"),
            ),
            (
                "http://10.0.0.7:3000/x",
                &PATH,
                Some("http://gw.test:8080/route/demo/x"),
            ),
            ("https://elsewhere.test/", &PATH, None),
            ("/login", &HOST, None),
            (
                "http://10.0.0.7:3000/x?y=1",
                &HOST,
                Some("https://demo.ws.test/x?y=1"),
            ),
        ];
        for (value, r, expected) in cases {
            assert_eq!(location(value, r).as_deref(), expected, "{value}");
        }
        assert_eq!(
            location("//gw.test:8080/a", &PATH).as_deref(),
            Some("//gw.test:8080/route/demo/a")
        );
        assert_eq!(
            location("HTTP://GW.TEST:8080", &PATH).as_deref(),
            Some("HTTP://GW.TEST:8080/route/demo/")
        );
    }

    #[test]
    fn cookies_keep_to_their_workspace() {
        let p = Some("/route/demo");
        assert_eq!(
            set_cookie("sid=1; Path=/; HttpOnly", p).as_deref(),
            Some("sid=1; Path=/route/demo/; HttpOnly")
        );
        assert_eq!(
            set_cookie("sid=1; path=/app; Domain=.ws.test; Secure", p).as_deref(),
            Some("sid=1; Path=/route/demo/app; Secure")
        );
        assert_eq!(
            set_cookie("sid=1; Path=/route/demo/x", p).as_deref(),
            Some("sid=1; Path=/route/demo/x")
        );
        assert_eq!(set_cookie("sid=1", p).as_deref(), Some("sid=1"));
        // Host routing: no prefix, but still no Domain.
        assert_eq!(
            set_cookie("sid=1; Path=/; Domain=ws.test", None).as_deref(),
            Some("sid=1; Path=/")
        );
        // Never the gateway's own cookie.
        assert_eq!(set_cookie("nocr_token=planted; Path=/", p), None);
        assert_eq!(set_cookie(" nocr_token =x", None), None);
    }
}
