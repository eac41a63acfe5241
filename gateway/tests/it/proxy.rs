//! Routing, stripping, forwarded headers, redirects and our error answers, end to end:
//! kube-sim pod → control's watch + publisher → gateway feed → Pingora → the pod's app.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube_sim::{Sim, SimConfig};
use serde_json::json;
use shared::route::{Route, RouteState};
use shared::table::Change;

use crate::harness::{TestGateway, control, eventually, get, keep_alive_get, route_to};

fn route(id: &str, state: RouteState, addr: Option<std::net::SocketAddr>) -> Route {
    Route {
        state,
        addr,
        owner_sub: None,
        ..route_to(id, ([127, 0, 0, 1], 1).into(), None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_pod_is_reachable_through_the_gateway() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(
        sim.client().await.unwrap_or_else(|e| panic!("{e}")),
        "default",
    );
    let ctl = control();
    let (synced_tx, _synced) = tokio::sync::watch::channel(false);
    tokio::spawn(control::watch::run(
        control::watch::WatchTargets {
            pods: pods.clone(),
            claims: kube::Api::namespaced(pods.clone().into_client(), "default"),
            index: std::sync::Arc::new(std::sync::Mutex::new(control::claims::Index::new(3000))),
            publisher: ctl.publisher.clone(),
        },
        synced_tx,
        ctl.stop.clone(),
    ));
    let gw = TestGateway::start(&ctl.socket).await;

    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "ws-demo", "labels": {"nogoo9/type": "workspace", "nogoo9/workspace-id": "demo"}},
        "spec": {"containers": [{"name": "w", "image": "node:20-alpine"}]}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reply = eventually("the workspace through the gateway", || async {
        let r = get(
            gw.addr,
            "/route/demo/x/y?z=1&w=%2F",
            &[
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-User", "mallory"),
            ],
        )
        .await;
        (r.status == 200).then_some(r)
    })
    .await;
    let answer = reply.json();
    assert_eq!(answer["pod"], "ws-demo");
    assert_eq!(answer["path"], "/x/y", "the /route/<id> prefix is stripped");
    assert_eq!(answer["query"], "z=1&w=%2F", "the query is kept as sent");
    let h = &answer["headers"];
    assert_eq!(h["x-forwarded-prefix"], "/route/demo");
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "client copies are replaced"
    );
    assert_eq!(h["x-forwarded-host"], "gw.test:8080");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(
        h.get("x-forwarded-user").is_none(),
        "a spoofed identity header never reaches the workspace"
    );

    // Hop-by-hop headers stop at the gateway, with those `Connection` nominates; the
    // rest goes through.
    let r = get(
        gw.addr,
        "/route/demo/hop",
        &[
            ("Connection", "close, X-Nominated"),
            ("X-Nominated", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "x-t"),
            ("Proxy-Authorization", "Basic dTpw"),
            ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
            ("X-Kept", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = &r.json()["headers"];
    for gone in [
        "connection",
        "x-nominated",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "proxy-authorization",
        "http2-settings",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the workspace: {h}");
    }
    assert_eq!(h["x-kept"], "1");
    // A keep-alive request with none of them (the common case) keeps every header.
    let mut kept_alive = tokio::net::TcpStream::connect(gw.addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (head, body) =
        keep_alive_get(&mut kept_alive, "/route/demo/plain", &[("X-Kept", "2")]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(seen["headers"]["x-kept"], "2", "{seen}");
    assert_eq!(seen["path"], "/plain");

    let redirect = get(gw.addr, "/route/demo?a=1", &[]).await;
    assert_eq!(
        (redirect.status, redirect.header("location")),
        (308, Some("/route/demo/?a=1"))
    );

    // WebSocket upgrade through the gateway.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/route/demo/socket", gw.addr))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        "ping through the gateway",
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap_or_else(|_| panic!("echo"))
        .unwrap_or_else(|| panic!("closed"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        echoed.into_text().unwrap_or_default().as_str(),
        "ping through the gateway"
    );

    // Control goes away: existing routes keep working.
    ctl.stop.cancel();
    gw.wait_disconnected().await;
    assert_eq!(get(gw.addr, "/route/demo/still", &[]).await.status, 200);

    pods.delete("ws-demo", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_json_with_stable_codes() {
    let ctl = control();
    // Before any table: 503, not ready.
    let silent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lonely = TestGateway::start(&silent.path().join("nobody.sock")).await;
    let r = get(lonely.addr, "/route/demo/", &[]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (503, Some("route_table_not_loaded"))
    );
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(get(lonely.admin, "/readyz", &[]).await.status, 503);
    assert_eq!(get(lonely.admin, "/healthz", &[]).await.status, 200);
    drop(lonely);

    let gw = TestGateway::start(&ctl.socket).await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let v = ctl.publisher.update(vec![
        Change::Upsert {
            route: route("starting", RouteState::Pending, None),
        },
        Change::Upsert {
            route: route("dead", RouteState::Ready, Some(closed_port)),
        },
    ]);
    ctl.publisher
        .wait_applied(v, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(get(gw.admin, "/readyz", &[]).await.status, 200);

    let cases = [
        ("/route/unknown/", 404, "workspace_not_found"),
        ("/route/starting/", 503, "workspace_not_ready"),
        ("/route/dead/", 502, "upstream_unavailable"),
        ("/route/Bad_Id/", 400, "invalid_workspace_id"),
        ("/route/starting/a/%2e%2e/b", 400, "bad_path"),
        ("/route/starting/a%2fb", 400, "bad_path"),
        ("/", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let r = get(gw.addr, path, &[]).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], code, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
    }
    assert_eq!(
        get(gw.addr, "/route/starting/", &[])
            .await
            .header("retry-after"),
        Some("2")
    );

    let metrics = get(gw.admin, "/metrics", &[]).await.body;
    assert!(
        metrics.contains("nocrd9_gateway_requests_total{outcome=\"workspace_not_found\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nocrd9_gateway_route_table_size 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nocrd9_gateway_sync_connected 1"),
        "{metrics}"
    );
    ctl.stop.cancel();
}
