//! Activity reporting: requests and WebSocket data frames are reported to control over
//! the route feed, coalesced per workspace; pings and pongs are not activity.

use std::time::Duration;

use futures::SinkExt;
use shared::ids::WorkspaceId;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::auth::{echo_app, publish, route};
use crate::harness::{TestGateway, eventually, get};
use crate::proxy::control;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_data_frames_reach_control_pings_do_not() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let stop = CancellationToken::new();
    let up = echo_app(&stop).await;
    let gw = TestGateway::start(&ctl.socket).await;
    publish(
        &ctl,
        vec![route("busy", up, None), route("quiet", up, None)],
    )
    .await;
    let busy = WorkspaceId::parse("busy").unwrap_or_else(|e| panic!("{e}"));
    let quiet = WorkspaceId::parse("quiet").unwrap_or_else(|e| panic!("{e}"));
    let last = |id: &WorkspaceId, uid: &str| ctl.publisher.activity().last_active(id, uid);

    assert_eq!(get(gw.addr, "/route/busy/x", &[]).await.status, 200);
    let after_request = eventually("a request reported as activity", || async {
        last(&busy, "uid-busy")
    })
    .await;
    assert_eq!(last(&quiet, "uid-quiet"), None, "no traffic, no activity");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/route/quiet/ws", gw.addr))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let upgraded = eventually("the upgrade request reported", || async {
        last(&quiet, "uid-quiet")
    })
    .await;
    // Pings only, across several reporting periods: the activity does not move.
    for _ in 0..4 {
        ws.send(Message::Ping(vec![1, 2, 3].into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        last(&quiet, "uid-quiet"),
        Some(upgraded),
        "pings are not activity"
    );
    ws.send(Message::text("real work"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("a data frame reported as activity", || async {
        last(&quiet, "uid-quiet").filter(|t| *t > upgraded)
    })
    .await;
    assert_eq!(last(&busy, "uid-busy"), Some(after_request));
    stop.cancel();
    ctl.stop.cancel();
}
