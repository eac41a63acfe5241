//! Every workspace its own browser origin: host routing (`<id>.DOMAIN`,
//! `<port>-<id>.DOMAIN`), the cookie a browser gets there and when it counts, tokens out of
//! URLs, what a workspace's response may tell the browser, browser-safe path routing,
//! the `Host` a workspace sees, and answers for browsers.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use shared::auth::{Verifier, VerifierConfig};
use shared::route::{Route, UpstreamHost};
use shared::table::Change;
use tokio_util::sync::CancellationToken;

use crate::harness::{
    Control, Options, Reply, TestGateway, control, echo_app_as, get, get_host, publish, route_to,
    serve,
};

const SECRET: &[u8] = b"origins-test-secret-origins-test-secret";
const DOMAIN: &str = "ws.test";

fn token(sub: &str) -> String {
    shared::auth::mint::hs256(SECRET, &shared::auth::mint::claims_for(sub, 600))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn upsert(route: Route) -> Change {
    Change::Upsert { route }
}

struct Setup {
    _ctl: Control,
    gw: TestGateway,
    _stop: CancellationToken,
    /// alice's app on its main port and a second declared port.
    main: std::net::SocketAddr,
    second: std::net::SocketAddr,
}

/// A gateway with auth on and the given routing, alice's workspace `alice-ws` (two
/// declared ports), mallory's `mal-ws`, and `raw-ws` (rewriting off, upstream Host of
/// the pod) and `cors-ws` (an app that allows every origin with credentials).
async fn setup(path_routing: bool) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let stop = CancellationToken::new();
    let main = echo_app_as(&stop, "alice-main").await;
    let second = echo_app_as(&stop, "alice-second").await;
    let mallory_app = echo_app_as(&stop, "mallory-main").await;
    let cors = serve(
        axum::Router::new().fallback(|headers: HeaderMap| async move {
            let origin = headers
                .get(header::ORIGIN)
                .cloned()
                .unwrap_or_else(|| header::HeaderValue::from_static("*"));
            (
                [
                    (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
                    (
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        header::HeaderValue::from_static("true"),
                    ),
                ],
                "secret",
            )
        }),
    )
    .await;
    let auth = Arc::new(
        Verifier::new(VerifierConfig {
            secret: Some(SECRET.to_vec()),
            cache_size: 100,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e:?}")),
    );
    let gw = TestGateway::start_with(
        &ctl.socket,
        Options {
            auth: Some(auth),
            routing: gateway::routing::Routing {
                domain: Some(DOMAIN.into()),
                path: path_routing,
            },
            ..Default::default()
        },
    )
    .await;
    let mut alice = route_to("alice-ws", main, Some("alice"));
    alice.web.ports = vec![main.port(), second.port()];
    let mut raw = route_to("raw-ws", main, Some("alice"));
    raw.web.rewrite_responses = false;
    raw.web.upstream_host = UpstreamHost::Pod;
    publish(
        &ctl,
        vec![
            upsert(alice),
            upsert(route_to("mal-ws", mallory_app, Some("mallory"))),
            upsert(raw),
            upsert(route_to("cors-ws", cors, Some("alice"))),
        ],
    )
    .await;
    Setup {
        _ctl: ctl,
        gw,
        _stop: stop,
        main,
        second,
    }
}

fn bearer(sub: &str) -> String {
    format!("Bearer {}", token(sub))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routing_gives_every_workspace_its_own_origin() {
    let s = setup(true).await;
    let gw = s.gw.addr;
    let alice = bearer("alice");
    let host = "alice-ws.ws.test:8080";

    // The host names the workspace; the path is the workspace's, untouched.
    let r = get_host(gw, host, "/route/x/y?z=1", &[("authorization", &alice)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(
        (seen["pod"].as_str(), seen["path"].as_str()),
        (Some("alice-main"), Some("/route/x/y"))
    );
    assert_eq!(seen["query"], "z=1");
    assert!(
        seen["headers"].get("x-forwarded-prefix").is_none(),
        "{seen}"
    );
    assert_eq!(seen["headers"]["host"], host, "the public Host by default");
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");

    // `<port>-<id>`: a declared port reaches that port; any other is not found.
    let port_host = format!("{}-alice-ws.ws.test:8080", s.second.port());
    let r = get_host(gw, &port_host, "/", &[("authorization", &alice)]).await;
    assert_eq!(
        (r.status, r.json()["pod"].as_str()),
        (200, Some("alice-second"))
    );
    let free = (1u16..)
        .find(|p| *p != s.main.port() && *p != s.second.port())
        .unwrap_or(1);
    let undeclared = format!("{free}-alice-ws.ws.test:8080");
    let r = get_host(gw, &undeclared, "/", &[("authorization", &alice)]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("workspace_not_found"))
    );
    assert_eq!(
        get_host(
            gw,
            &format!("{}-alice-ws.ws.test", s.main.port()),
            "/",
            &[("authorization", &alice)]
        )
        .await
        .json()["pod"],
        "alice-main"
    );

    // The same owner rule: mallory's token on alice's host is a missing workspace.
    let mallory = bearer("mallory");
    let theirs = get_host(gw, host, "/", &[("authorization", &mallory)]).await;
    let missing = get_host(
        gw,
        "nobody.ws.test:8080",
        "/",
        &[("authorization", &mallory)],
    )
    .await;
    assert_eq!(
        (theirs.status, &theirs.body),
        (missing.status, &missing.body)
    );
    assert_eq!(theirs.status, 404);
    assert_eq!(get_host(gw, host, "/", &[]).await.status, 401);
    assert_eq!(
        get_host(gw, "a.b.ws.test", "/", &[("authorization", &alice)])
            .await
            .status,
        400,
        "a host under the domain that is no workspace id"
    );

    // A page opened with ?token=: the cookie (host-only, Lax) and 303 to the same URL
    // without the token, other parameters kept, no referrer.
    let t = token("alice");
    let r = get_host(
        gw,
        host,
        &format!("/p?a=1&token={t}&b=2"),
        &[("accept", "text/html"), ("sec-fetch-dest", "document")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/p?a=1&b=2"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let cookie = r.header("set-cookie").unwrap_or_default().to_string();
    assert!(
        cookie.starts_with(&format!("nocr_token={t}; Path=/; Max-Age=")),
        "{cookie}"
    );
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Lax"),
        "host-only, Lax, no Secure without TLS: {cookie}"
    );
    assert!(!cookie.to_ascii_lowercase().contains("domain"), "{cookie}");
    let jar = cookie.split(';').next().unwrap_or_default().to_string();

    // The cookie counts from the workspace's own origin, or for a top-level navigation;
    // never for a request another origin's page makes.
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, String)> = vec![("cookie", jar.clone())];
        h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        h
    };
    let cases: [(&[(&'static str, &'static str)], u16); 6] = [
        (&[], 200),
        (
            &[
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "cors"),
                ("origin", "http://alice-ws.ws.test:8080"),
            ],
            200,
        ),
        (
            &[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate"),
            ],
            200,
        ),
        (
            &[
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "cors"),
                ("origin", "http://mal-ws.ws.test:8080"),
            ],
            401,
        ),
        (
            &[
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "navigate"),
                ("origin", "http://mal-ws.ws.test:8080"),
            ],
            401,
        ),
        (&[("origin", "http://mal-ws.ws.test:8080")], 401),
    ];
    for (extra, status) in cases {
        let headers = with(extra);
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get_host(gw, host, "/c", &refs).await;
        assert_eq!(r.status, status, "{extra:?}: {}", r.body);
        if status == 200 {
            assert!(
                r.json()["headers"].get("cookie").is_none(),
                "the token cookie never goes upstream"
            );
        }
    }

    // What a workspace may tell the browser on its own host: cookies without Domain,
    // never the gateway's cookie; its redirects as they are.
    let r = get_host(
        gw,
        host,
        "/?set-cookie=sid%3D1%3B%20Domain%3Dws.test%3B%20Path%3D%2F&set-cookie=nocr_token%3Dplanted%3B%20Path%3D%2F&redirect=%2Flogin",
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/login"));
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, vec!["sid=1; Path=/"]);

    // Credentials are never allowed for another origin, whatever the app says.
    let cors_host = "cors-ws.ws.test:8080";
    let own = get_host(
        gw,
        cors_host,
        "/",
        &[
            ("authorization", &alice),
            ("origin", "http://cors-ws.ws.test:8080"),
        ],
    )
    .await;
    assert_eq!(own.header("access-control-allow-credentials"), Some("true"));
    let foreign = get_host(
        gw,
        cors_host,
        "/",
        &[
            ("authorization", &alice),
            ("origin", "http://mal-ws.ws.test:8080"),
        ],
    )
    .await;
    assert_eq!(foreign.status, 200);
    assert_eq!(foreign.header("access-control-allow-credentials"), None);

    // Browsers get a page for our refusals, API clients JSON, with the same status.
    let page = get_host(
        gw,
        "nobody.ws.test:8080",
        "/",
        &[("authorization", &alice), ("accept", "text/html")],
    )
    .await;
    assert_eq!(page.status, 404);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert!(
        page.body.contains("<h1>404 Not Found</h1>"),
        "{}",
        page.body
    );
    let api = get_host(gw, "nobody.ws.test:8080", "/", &[("authorization", &alice)]).await;
    assert_eq!(api.json()["error"], "workspace_not_found");

    // Path routing is still there by default.
    let r = get(gw, "/route/alice-ws/x", &[("authorization", &alice)]).await;
    assert_eq!((r.status, r.json()["path"].as_str()), (200, Some("/x")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_routing_can_be_turned_off() {
    let s = setup(false).await;
    let alice = bearer("alice");
    let r = get(s.gw.addr, "/route/alice-ws/x", &[("authorization", &alice)]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("not_found"))
    );
    let r = get_host(
        s.gw.addr,
        "alice-ws.ws.test",
        "/x",
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_routing_keeps_a_workspace_in_its_prefix() {
    let s = setup(true).await;
    let gw = s.gw.addr;
    let alice = bearer("alice");
    let auth: [(&str, &str); 1] = [("authorization", &alice)];

    // Redirects to absolute paths and to the public host go under the prefix.
    let r = get(
        gw,
        "/route/alice-ws/start?redirect=%2Flogin%3Fnext%3D%2Fa",
        &auth,
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/route/alice-ws/login?next=/a"));
    let r = get(
        gw,
        "/route/alice-ws/?redirect=http%3A%2F%2Fgw.test%3A8080%2Fhome",
        &auth,
    )
    .await;
    assert_eq!(
        r.header("location"),
        Some("http://gw.test:8080/route/alice-ws/home")
    );
    let r = get(
        gw,
        "/route/alice-ws/?redirect=%2Froute%2Falice-ws%2Falready",
        &auth,
    )
    .await;
    assert_eq!(r.header("location"), Some("/route/alice-ws/already"));
    let r = get(
        gw,
        "/route/alice-ws/?redirect=https%3A%2F%2Fidp.example%2Fauth",
        &auth,
    )
    .await;
    assert_eq!(
        r.header("location"),
        Some("https://idp.example/auth"),
        "other sites untouched"
    );
    let r = get(gw, "/route/alice-ws/?redirect=next", &auth).await;
    assert_eq!(
        r.header("location"),
        Some("next"),
        "relative: the browser resolves it under the prefix"
    );

    // Cookies stay in the prefix and on this host.
    let r = get(
        gw,
        "/route/alice-ws/?set-cookie=sid%3D1%3B%20Path%3D%2F%3B%20HttpOnly&set-cookie=pref%3Dx%3B%20Path%3D%2Fapp%3B%20Domain%3Dgw.test",
        &auth,
    )
    .await;
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        cookies,
        vec![
            "sid=1; Path=/route/alice-ws/; HttpOnly",
            "pref=x; Path=/route/alice-ws/app"
        ]
    );

    // `nogoo9/rewrite-responses: "false"`: as the app said (but still no Domain, no
    // gateway cookie); `nogoo9/upstream-host: pod`: the app sees its own address.
    let r = get(
        gw,
        "/route/raw-ws/?redirect=%2Flogin&set-cookie=sid%3D1%3B%20Path%3D%2F%3B%20Domain%3Dgw.test",
        &auth,
    )
    .await;
    assert_eq!(r.header("location"), Some("/login"));
    assert_eq!(r.header("set-cookie"), Some("sid=1; Path=/"));
    let r = get(gw, "/route/raw-ws/h", &auth).await;
    assert_eq!(r.json()["headers"]["host"], s.main.to_string());
    assert_eq!(r.json()["headers"]["x-forwarded-host"], "gw.test:8080");
    // A redirect to that address comes back as the public URL.
    let to_pod = format!("/route/raw-ws/?redirect=http%3A%2F%2F{}%2Fx", s.main);
    let r = get(gw, &to_pod, &auth).await;
    assert_eq!(
        r.header("location"),
        Some("http://gw.test:8080/x"),
        "rewriting off: no prefix added"
    );
    let to_pod = format!("/route/alice-ws/?redirect=http%3A%2F%2F{}%2Fx", s.main);
    assert_eq!(
        get(gw, &to_pod, &auth).await.header("location"),
        Some("http://gw.test:8080/route/alice-ws/x")
    );

    // Tokens out of URLs under path routing too, and never in the Referer upstream.
    let t = token("alice");
    let r: Reply = get(
        gw,
        &format!("/route/alice-ws/doc?token={t}"),
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/route/alice-ws/doc"));
    let cookie = r.header("set-cookie").unwrap_or_default();
    assert!(
        cookie.contains("Path=/route/alice-ws/;") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let referer = format!("http://gw.test:8080/route/alice-ws/doc?token={t}&q=1");
    let r = get(
        gw,
        "/route/alice-ws/next",
        &[("authorization", &alice), ("referer", &referer)],
    )
    .await;
    assert_eq!(
        r.json()["headers"]["referer"],
        "http://gw.test:8080/route/alice-ws/doc?q=1"
    );
}
