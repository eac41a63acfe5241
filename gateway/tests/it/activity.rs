//! Activity reporting: requests and WebSocket data frames are reported to control over
//! the route feed, coalesced per workspace; pings and pongs are not activity.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use shared::ids::WorkspaceId;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::harness::{TestGateway, control, echo_app, eventually, get, publish, route};

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
    // Pings only, each answered (so it crossed the gateway both ways): the activity
    // does not move. A request to another workspace afterwards, once reported, shows a
    // report went out after the pings.
    for _ in 0..4 {
        ws.send(Message::Ping(vec![1, 2, 3].into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let pong = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a pong in time")
            .expect("the socket stays open")
            .expect("a frame");
        assert!(pong.is_pong(), "{pong:?}");
    }
    assert_eq!(get(gw.addr, "/route/busy/again", &[]).await.status, 200);
    let after_pings = eventually("a report after the pings", || async {
        last(&busy, "uid-busy").filter(|t| *t > after_request)
    })
    .await;
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
    assert_eq!(last(&busy, "uid-busy"), Some(after_pings));
    stop.cancel();
    ctl.stop.cancel();
}
