//! The gateway's route feed against the real publisher on a Unix socket: snapshot,
//! deltas, acks, and a control restart during which the last table keeps serving.

use std::sync::Arc;
use std::time::Duration;

use gateway::store::RouteStore;
use gateway::sync::{self, SyncConfig, SyncStatus};
use shared::ids::WorkspaceId;
use shared::route::Route;
use shared::table::Change;
use shared::testkit::eventually;
use tokio_util::sync::CancellationToken;

use crate::harness::control_at;

const WAIT: Duration = Duration::from_secs(20);

fn route(id: &str, uid: &str) -> Route {
    shared::testkit::route(id, uid, ([127, 10, 0, 9], 3000).into(), Some("alice"))
}

#[tokio::test]
async fn the_feed_follows_control_and_survives_its_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("control.sock");
    let store = RouteStore::new();
    let status = Arc::new(SyncStatus::default());
    let stop = CancellationToken::new();

    // The gateway starts first: not loaded, and it keeps retrying.
    tokio::spawn(sync::run(
        SyncConfig {
            socket: socket.clone(),
            gateway_id: "gw-1".into(),
            activity_every: Duration::from_secs(5),
        },
        store.clone(),
        status.clone(),
        Arc::default(),
        Arc::default(),
        stop.clone(),
    ));
    let ctl = control_at(&socket, 1);
    let (control, control_stop) = (ctl.publisher.clone(), ctl.stop.clone());
    let v = control.update(vec![Change::Upsert {
        route: route("a", "1"),
    }]);
    eventually("the first snapshot", WAIT, || {
        store.is_loaded() && store.load().version() == v
    })
    .await;
    control
        .wait_applied(v, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let v = control.update(vec![Change::Upsert {
        route: route("b", "2"),
    }]);
    control
        .wait_applied(v, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        **store.load(),
        control.table(),
        "the acked table is control's table"
    );
    assert!(control.gateways().iter().all(|g| g.in_sync));

    // Control goes away: the last table keeps serving.
    control_stop.cancel();
    drop(control);
    eventually("the gateway to notice control is gone", WAIT, || {
        !status.connected()
    })
    .await;
    assert_eq!(store.load().len(), 2);
    assert!(
        store
            .load()
            .get(&WorkspaceId::parse("b").unwrap_or_else(|e| panic!("{e}")))
            .is_some()
    );

    // A new control (new epoch) comes back with different routes: the gateway resyncs.
    let ctl = control_at(&socket, 2);
    let (control, control_stop) = (ctl.publisher.clone(), ctl.stop.clone());
    let v = control.update(vec![Change::Upsert {
        route: route("c", "3"),
    }]);
    eventually("the resync after restart", WAIT, || {
        store.load().epoch() == 2 && store.load().version() == v
    })
    .await;
    assert_eq!(store.load().len(), 1);
    control
        .wait_applied(v, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.connected());
    assert!(status.staleness_ms().is_some_and(|ms| ms < 10_000));
    control_stop.cancel();
    stop.cancel();
}

/// A burst of single-route updates (a thousand pods turning Ready at once) must all
/// arrive. Both ends used to write from the loop that also reads: control, busy writing
/// deltas, stopped reading acks; the gateway, blocked writing an ack, stopped reading
/// deltas — and the feed stalled for good with part of the burst applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_updates_does_not_stall_the_feed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("control.sock");
    let ctl = control_at(&socket, 1);
    let (control, control_stop) = (ctl.publisher.clone(), ctl.stop.clone());
    let stop = CancellationToken::new();
    let mut gateways = Vec::new();
    for i in 0..3 {
        let store = RouteStore::new();
        tokio::spawn(sync::run(
            SyncConfig {
                socket: socket.clone(),
                gateway_id: format!("gw-{i}"),
                activity_every: Duration::from_secs(5),
            },
            store.clone(),
            Arc::new(SyncStatus::default()),
            Arc::default(),
            Arc::default(),
            stop.clone(),
        ));
        gateways.push(store);
    }
    eventually("three gateways", WAIT, || control.gateways().len() == 3).await;
    let mut last = 0;
    for i in 0..20_000u32 {
        last = control.update(vec![Change::Upsert {
            route: route(&format!("ws-{i}"), &format!("uid-{i}")),
        }]);
    }
    eventually(
        &format!("every gateway at version {last} (a stalled feed never gets there)"),
        Duration::from_secs(60),
        || {
            gateways
                .iter()
                .all(|s| s.is_loaded() && s.load().version() == last)
        },
    )
    .await;
    for s in &gateways {
        assert_eq!(s.load().len(), 20_000);
    }
    control
        .wait_applied(last, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    control_stop.cancel();
    stop.cancel();
}
