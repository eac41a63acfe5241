//! The publisher against fake gateways on a real Unix socket.

use std::time::Duration;

use shared::codec::{read_frame, write_frame};
use shared::feed::{self, Follower, Step};
use shared::ids::WorkspaceId;
use shared::proto::{ToControl, ToGateway};
use shared::route::Route;
use shared::table::{Change, RouteTable};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use super::Publisher;

fn route(id: &str, uid: &str) -> Route {
    shared::testkit::route(id, uid, ([127, 10, 0, 1], 3000).into(), None)
}

struct Fixture {
    publisher: Publisher,
    path: std::path::PathBuf,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("control.sock");
    let publisher = Publisher::new(42);
    let listener = Publisher::bind(&path).unwrap_or_else(|e| panic!("{e}"));
    let shutdown = CancellationToken::new();
    let p = publisher.clone();
    let s = shutdown.clone();
    tokio::spawn(async move { p.serve(listener, s).await });
    Fixture {
        publisher,
        path,
        shutdown,
        _dir: dir,
    }
}

/// A gateway that runs the protocol's follower on what it receives and acks when told to.
struct FakeGateway {
    stream: UnixStream,
    follower: Follower,
}

impl FakeGateway {
    async fn connect(path: &std::path::Path, proto: u32) -> Self {
        Self::connect_having(path, proto, None).await
    }

    /// Connects saying it already serves `have` (a reconnect).
    async fn connect_having(path: &std::path::Path, proto: u32, have: Option<RouteTable>) -> Self {
        let mut stream = UnixStream::connect(path).await.expect("connect");
        let follower = Follower::new(have);
        let hello = match follower.hello("gw-test") {
            ToControl::Hello {
                gateway_id, have, ..
            } => ToControl::Hello {
                proto,
                gateway_id,
                have,
            },
            other => other,
        };
        write_frame(&mut stream, &hello).await.expect("hello");
        FakeGateway { stream, follower }
    }

    fn table(&self) -> RouteTable {
        self.follower.table().cloned().unwrap_or_default()
    }

    async fn next(&mut self) -> ToGateway {
        loop {
            let msg = tokio::time::timeout(
                Duration::from_secs(5),
                read_frame::<_, ToGateway>(&mut self.stream),
            )
            .await
            .unwrap_or_else(|_| panic!("no frame within 5 s"))
            .expect("a frame")
            .unwrap_or_else(|| panic!("control closed the channel"));
            if !matches!(msg, ToGateway::Ping { .. }) {
                return msg;
            }
        }
    }

    /// Reads a whole snapshot into the follower.
    async fn snapshot(&mut self) {
        loop {
            let msg = self.next().await;
            assert!(
                matches!(msg, ToGateway::Snapshot { .. }),
                "expected a snapshot, got {msg:?}"
            );
            match self.follower.on_frame(msg) {
                Step::Serve(_) => return,
                Step::Nothing => continue,
                other => panic!("{other:?}"),
            }
        }
    }

    async fn delta(&mut self) {
        let msg = self.next().await;
        assert!(
            matches!(msg, ToGateway::Delta { .. }),
            "expected a delta, got {msg:?}"
        );
        assert!(matches!(self.follower.on_frame(msg), Step::Serve(_)));
    }

    async fn ack(&mut self) {
        let ack = feed::ack(&self.table());
        write_frame(&mut self.stream, &ack).await.expect("ack");
    }

    async fn send(&mut self, msg: &ToControl) {
        write_frame(&mut self.stream, msg).await.expect("send");
    }
}

#[tokio::test]
async fn a_gateway_gets_a_snapshot_then_deltas_and_its_acks_release_waiters() {
    let f = fixture().await;
    f.publisher.update(vec![Change::Upsert {
        route: route("a", "1"),
    }]);
    let mut gw = FakeGateway::connect(&f.path, 1).await;
    gw.snapshot().await;
    let table = gw.table();
    assert_eq!((table.epoch(), table.version(), table.len()), (42, 1, 1));
    gw.ack().await;

    let v = f.publisher.update(vec![Change::Upsert {
        route: route("b", "2"),
    }]);
    assert!(
        f.publisher
            .wait_applied(v, Duration::from_millis(200))
            .await
            .is_err(),
        "not acked yet"
    );
    gw.delta().await;
    assert_eq!(gw.table().len(), 2);
    gw.ack().await;
    f.publisher
        .wait_applied(v, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = f.publisher.gateways();
    assert_eq!(status.len(), 1);
    assert!(status[0].in_sync, "the gateway's hash matches control's");
    assert_eq!(gw.table(), f.publisher.table());
    f.shutdown.cancel();
}

#[tokio::test]
async fn stale_removals_are_fenced_and_replace_all_sends_only_the_difference() {
    let f = fixture().await;
    f.publisher.update(vec![Change::Upsert {
        route: route("a", "old"),
    }]);
    f.publisher.update(vec![Change::Upsert {
        route: route("a", "new"),
    }]);
    f.publisher.update(vec![Change::Remove {
        workspace_id: WorkspaceId::parse("a").unwrap_or_else(|e| panic!("{e}")),
        pod_uid: "old".into(),
    }]);
    assert_eq!(
        f.publisher
            .table()
            .get(&WorkspaceId::parse("a").unwrap_or_else(|e| panic!("{e}")))
            .map(|r| r.pod_uid.clone())
            .as_deref(),
        Some("new")
    );
    let mut gw = FakeGateway::connect(&f.path, 1).await;
    gw.snapshot().await;
    let v = f
        .publisher
        .replace_all([route("a", "new"), route("c", "3")]);
    gw.delta().await;
    assert_eq!(gw.table().version(), v);
    assert_eq!(gw.table(), f.publisher.table());
    assert_eq!(
        f.publisher
            .replace_all([route("a", "new"), route("c", "3")]),
        v,
        "no change, no version"
    );
    f.shutdown.cancel();
}

#[tokio::test]
async fn unknown_protocol_versions_get_a_nack() {
    let f = fixture().await;
    let mut gw = FakeGateway::connect(&f.path, 99).await;
    match gw.next().await {
        ToGateway::Nack { reason } => assert!(
            reason.contains("unsupported protocol version 99"),
            "{reason}"
        ),
        other => panic!("expected a nack, got {other:?}"),
    }
    f.shutdown.cancel();
}

#[tokio::test]
async fn a_resync_request_gets_a_fresh_snapshot_and_no_gateway_means_nothing_to_wait_for() {
    let f = fixture().await;
    let v = f.publisher.update(vec![Change::Upsert {
        route: route("a", "1"),
    }]);
    f.publisher
        .wait_applied(v, Duration::from_millis(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut gw = FakeGateway::connect(&f.path, 1).await;
    gw.snapshot().await;
    gw.send(&ToControl::Resync {
        reason: "test".into(),
    })
    .await;
    gw.snapshot().await;
    assert_eq!(gw.table().len(), 1);
    drop(gw);
    // The disconnected gateway no longer holds waiters back.
    let v = f.publisher.update(vec![Change::Upsert {
        route: route("b", "2"),
    }]);
    tokio::time::timeout(Duration::from_secs(5), async {
        while f
            .publisher
            .wait_applied(v, Duration::from_millis(50))
            .await
            .is_err()
        {}
    })
    .await
    .unwrap_or_else(|_| panic!("waiters released after the gateway left"));
    f.shutdown.cancel();
}

#[tokio::test]
async fn the_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture().await;
    let mode = std::fs::metadata(&f.path)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Binding again over a stale socket file works (a restarted control).
    drop(Publisher::bind(&f.path).unwrap_or_else(|e| panic!("{e}")));
    f.shutdown.cancel();
}

#[tokio::test]
async fn a_reconnecting_gateway_gets_deltas_not_a_snapshot() {
    let f = fixture().await;
    f.publisher.update(vec![Change::Upsert {
        route: route("a", "1"),
    }]);
    let mut gw = FakeGateway::connect(&f.path, 1).await;
    gw.snapshot().await;
    let had = gw.table();
    drop(gw);
    f.publisher.update(vec![Change::Upsert {
        route: route("b", "2"),
    }]);
    let mut again = FakeGateway::connect_having(&f.path, 1, Some(had)).await;
    again.delta().await;
    assert_eq!(again.table(), f.publisher.table());
}

#[tokio::test]
async fn a_drifted_gateway_gets_a_snapshot_and_unknown_messages_a_nack() {
    let f = fixture().await;
    f.publisher.update(vec![Change::Upsert {
        route: route("a", "1"),
    }]);
    let mut gw = FakeGateway::connect(&f.path, 1).await;
    gw.snapshot().await;
    let t = gw.table();
    // An ack whose hash is not control's at that version: control sends the table again.
    gw.send(&ToControl::Ack {
        epoch: t.epoch(),
        version: t.version(),
        table_hash: t.hash() ^ 1,
    })
    .await;
    gw.snapshot().await;
    // A message type from a newer gateway: a Nack, and the session goes on.
    write_frame(
        &mut gw.stream,
        &serde_json::json!({"type": "from_the_future"}),
    )
    .await
    .expect("send");
    match gw.next().await {
        ToGateway::Nack { reason } => assert!(reason.contains("unknown message type"), "{reason}"),
        other => panic!("expected a nack, got {other:?}"),
    }
    f.publisher.update(vec![Change::Upsert {
        route: route("b", "2"),
    }]);
    gw.delta().await;
    assert_eq!(gw.table(), f.publisher.table());
}
