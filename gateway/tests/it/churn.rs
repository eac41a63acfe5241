//! Route updates while traffic flows, and control going away and coming back: steady
//! traffic to one workspace never fails while hundreds of other routes come and go,
//! while its own route moves to a new pod, and while control restarts (the gateway
//! keeps its table, then resyncs to the new control's).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use shared::ids::WorkspaceId;
use shared::route::Route;
use shared::table::Change;
use tokio_util::sync::CancellationToken;

use crate::harness::{TestGateway, control_at, echo_app, eventually, get};

fn route(id: &str, uid: &str, addr: std::net::SocketAddr) -> Route {
    shared::testkit::route(id, uid, addr, None)
}

/// Waits until `ok` has grown by `by` from now.
async fn more_succeed(ok: &AtomicU64, by: u64, what: &str) {
    let from = ok.load(Ordering::Relaxed);
    shared::testkit::eventually(what, Duration::from_secs(20), || {
        ok.load(Ordering::Relaxed) >= from + by
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_churn_and_a_control_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("control.sock");
    let apps = CancellationToken::new();
    let (up1, up2) = (echo_app(&apps).await, echo_app(&apps).await);
    let ctl = control_at(&socket, 1);
    let (control, control_stop) = (ctl.publisher.clone(), ctl.stop.clone());
    let gw = TestGateway::start(&socket).await;
    let v = control.update(vec![Change::Upsert {
        route: route("steady", "pod-1", up1),
    }]);
    control
        .wait_applied(v, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let addr = gw.addr;
    let traffic: Vec<_> = (0..2)
        .map(|_| {
            let (running, ok, failed) = (running.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    let r = get(addr, "/route/steady/ping", &[]).await;
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        eprintln!("steady failed: {} {}", r.status, r.body);
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    // 600 updates: other workspaces come and go; every 100, steady moves to a new pod.
    let mut last = 0;
    for i in 0..600u32 {
        let mut changes = vec![Change::Upsert {
            route: route(&format!("churn-{}", i % 50), &format!("c-{i}"), up2),
        }];
        if i % 3 == 0 {
            changes.push(Change::Remove {
                workspace_id: WorkspaceId::parse(&format!("churn-{}", (i + 25) % 50))
                    .unwrap_or_else(|e| panic!("{e}")),
                pod_uid: format!("c-{}", i.saturating_sub(25)),
            });
        }
        if i % 100 == 99 {
            let target = if (i / 100) % 2 == 0 { up2 } else { up1 };
            changes.push(Change::Upsert {
                route: route("steady", &format!("pod-{i}"), target),
            });
        }
        last = control.update(changes);
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    control
        .wait_applied(last, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        get(gw.addr, "/route/churn-49/", &[]).await.status,
        200,
        "the last churned route is live"
    );

    // Control goes away: traffic keeps flowing on the last table.
    control_stop.cancel();
    drop(control);
    gw.wait_disconnected().await;
    let at_outage = ok.load(Ordering::Relaxed);
    more_succeed(&ok, 20, "requests to succeed while control is away").await;
    let during_outage = ok.load(Ordering::Relaxed) - at_outage;

    // A new control (new epoch, a different table) comes back: the gateway resyncs.
    let ctl = control_at(&socket, 2);
    let (control, control_stop) = (ctl.publisher.clone(), ctl.stop.clone());
    control.update(vec![
        Change::Upsert {
            route: route("steady", "pod-new", up1),
        },
        Change::Upsert {
            route: route("after-restart", "pod-ar", up2),
        },
    ]);
    eventually("the new control's route", || async {
        (get(gw.addr, "/route/after-restart/", &[]).await.status == 200).then_some(())
    })
    .await;
    assert_eq!(
        get(gw.addr, "/route/churn-49/", &[]).await.status,
        404,
        "the old table is gone"
    );
    more_succeed(&ok, 20, "requests to succeed after the restart").await;
    running.store(false, Ordering::Relaxed);
    for t in traffic {
        let _ = t.await;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{ok} succeeded");
    assert!(
        during_outage >= 20,
        "traffic flowed while control was away ({during_outage} of {ok})"
    );
    control_stop.cancel();
    apps.cancel();
}
