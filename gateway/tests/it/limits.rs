//! Limits and timeouts through the real gateway: the per-workspace connection cap, the
//! header size limit, the upstream timeout (504) while long-lived streams get the idle
//! timeout instead, and the gateway's own default workspace port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use shared::ids::WorkspaceId;
use shared::route::{Route, RouteState};
use shared::table::Change;
use tokio::sync::Notify;

use crate::harness::{Options, TestGateway, control, get, keep_alive_get, publish, route, serve};

/// `/hold` answers only when released (and counts arrivals); `/slow-events` sends three events 1.5 s apart;
/// anything else answers at once.
async fn upstream(release: Arc<Notify>, arrivals: Arc<AtomicUsize>) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/hold",
            axum::routing::get(move || {
                let release = release.clone();
                arrivals.fetch_add(1, Ordering::SeqCst);
                async move {
                    release.notified().await;
                    "released"
                }
            }),
        )
        .route(
            "/slow-events",
            axum::routing::get(|| async {
                let events = futures::stream::unfold(0u8, |i| async move {
                    if i == 3 {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                    }
                    Some((Ok::<_, std::io::Error>(format!("data: {i}\n\n")), i + 1))
                });
                (
                    [("content-type", "text/event-stream")],
                    Body::from_stream(events),
                )
            }),
        )
        .fallback(|| async { "ok" });
    serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_limits_and_timeouts() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let release = Arc::new(Notify::new());
    let arrivals = Arc::new(AtomicUsize::new(0));
    let up = upstream(release.clone(), arrivals.clone()).await;
    let gw = TestGateway::start_with(
        &ctl.socket,
        Options {
            limits: gateway::limits::Limits {
                max_header_bytes: 4096,
                upstream_timeout: Duration::from_secs(1),
                downstream_timeout: Duration::from_secs(5),
                upgraded_idle_timeout: Duration::from_secs(10),
                max_connections_per_workspace: 2,
                ..Default::default()
            },
            default_workspace_port: Some(up.port()),
            ..Default::default()
        },
    )
    .await;
    let unnamed_port = Change::Upsert {
        route: Route {
            workspace_id: WorkspaceId::parse("defport").unwrap_or_else(|e| panic!("{e}")),
            pod_uid: "uid-defport".into(),
            namespace: "default".into(),
            state: RouteState::Ready,
            // Control's idea of the default port (1) is not this gateway's.
            addr: Some(SocketAddr::new(up.ip(), 1)),
            owner_sub: None,
            port_is_default: true,
            web: Default::default(),
        },
    };
    publish(&ctl, vec![route("capped", up, None), unnamed_port]).await;

    // The gateway's --default-workspace-port applies to routes that name no port.
    let r = get(gw.addr, "/route/defport/", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    // Headers over the limit: 431 with our code.
    let big = "y".repeat(5000);
    let r = get(gw.addr, "/route/capped/", &[("x-big", &big)]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (431, Some("headers_too_large"))
    );

    // Upstream timeout: a request the workspace never answers ends in 504 after ~1 s.
    let started = std::time::Instant::now();
    let r = get(gw.addr, "/route/capped/hold", &[]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (504, Some("upstream_timeout"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // An event stream is long-lived: gaps longer than the upstream timeout are fine.
    let r = get(
        gw.addr,
        "/route/capped/slow-events",
        &[("accept", "text/event-stream")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("data: 2"), "{}", r.body);

    // The connection cap: two held requests fill it, the third gets 503 + Retry-After.
    let gw_addr = gw.addr;
    let held: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                get(
                    gw_addr,
                    "/route/capped/hold",
                    &[("accept", "text/event-stream")],
                )
                .await
            })
        })
        .collect();
    // Both must be waiting at the upstream before the probe (else a probe could take
    // the second place and a held request get the 503).
    crate::harness::eventually("both held requests at the upstream", || async {
        (arrivals.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    let mut third = None;
    for _ in 0..100 {
        let r = get(gw.addr, "/route/capped/other", &[]).await;
        if r.status == 503 {
            third = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = third.unwrap_or_else(|| panic!("the cap was never reached"));
    assert_eq!(third.json()["error"], "workspace_connection_limit");
    assert_eq!(third.header("retry-after"), Some("2"));
    assert_eq!(
        get(gw.addr, "/route/defport/", &[]).await.status,
        200,
        "other workspaces unaffected"
    );
    release.notify_waiters();
    for h in held {
        let r = h.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.status, r.body.as_str()), (200, "released"));
    }
    assert_eq!(
        get(gw.addr, "/route/capped/again", &[]).await.status,
        200,
        "slots are given back"
    );
    let metrics = get(gw.admin, "/metrics", &[]).await.body;
    assert!(
        metrics.contains("nocrd9_gateway_requests_total{outcome=\"workspace_connection_limit\"} 1"),
        "{metrics}"
    );
    ctl.stop.cancel();
}

/// Upstream connections are reused across more workspaces than Pingora's default pool
/// (128) holds: a second pass over 300 workspaces opens no new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_across_hundreds_of_workspaces() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let stop = tokio_util::sync::CancellationToken::new();
    let up = crate::harness::echo_app(&stop).await;
    let gw = TestGateway::start(&ctl.socket).await;
    let routes: Vec<Change> = (0..300)
        .map(|i| route(&format!("pool-{i}"), up, None))
        .collect();
    publish(&ctl, routes).await;
    let counters = |text: &str| {
        let value = |reused: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "nocrd9_gateway_upstream_connections_total{{reused=\"{reused}\"}}"
                    ))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (value("true"), value("false"))
    };
    // Keep-alive client so the gateway's side is the only variable.
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let read_one = async |s: &mut tokio::net::TcpStream, path: &str| {
        let (head, _) = keep_alive_get(s, path, &[]).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    };
    for i in 0..300 {
        read_one(&mut s, &format!("/route/pool-{i}/")).await;
    }
    let (_, new_first) = counters(&get(gw.admin, "/metrics", &[]).await.body);
    for i in 0..300 {
        read_one(&mut s, &format!("/route/pool-{i}/")).await;
    }
    let (reused, new_total) = counters(&get(gw.admin, "/metrics", &[]).await.body);
    assert_eq!(
        new_total, new_first,
        "the second pass opened no new upstream connection"
    );
    assert!(reused >= 300, "{reused} reused");
    stop.cancel();
    ctl.stop.cancel();
}

/// A pool smaller than the workspaces keeps the most recently released connections and
/// evicts the least recently released ones, one per new connection beyond its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_upstream_pool_keeps_the_most_recently_released_connections() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let up = upstream(Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0))).await;
    // One app, five workspaces: five pods as far as the pool can tell (keyed by pod).
    publish(
        &ctl,
        (1..=5).map(|i| route(&format!("p{i}"), up, None)).collect(),
    )
    .await;
    let gw = TestGateway::start_with(
        &ctl.socket,
        Options {
            limits: gateway::limits::Limits {
                upstream_pool_size: 2,
                ..Default::default()
            },
            threads: Some(1),
            ..Default::default()
        },
    )
    .await;
    let serve_in_turn = |ids: &'static [u8]| {
        let addr = gw.addr;
        async move {
            for i in ids {
                let r = get(addr, &format!("/route/p{i}/"), &[]).await;
                assert_eq!(r.status, 200, "p{i}: {}", r.body);
            }
        }
    };
    serve_in_turn(&[1, 2, 3, 4, 5]).await;
    assert_eq!(gw.metrics.upstream_connections(), (5, 0), "(new, reused)");
    // The pool holds p4 and p5: both reused, then p3, p2 and p1 each evict the oldest.
    serve_in_turn(&[5, 4, 3, 2, 1]).await;
    assert_eq!(gw.metrics.upstream_connections(), (8, 2));
    serve_in_turn(&[2, 1]).await;
    assert_eq!(
        gw.metrics.upstream_connections(),
        (8, 4),
        "the two kept last"
    );
    serve_in_turn(&[3]).await;
    assert_eq!(gw.metrics.upstream_connections(), (9, 4), "p3 was evicted");
}
