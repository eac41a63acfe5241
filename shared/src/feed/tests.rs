//! The feed without sockets: a control `Log` and gateway `Follower`s exchanging frames
//! in memory, through snapshots, deltas, reconnects, drift and frames from newer peers.

use super::*;
use crate::ids::WorkspaceId;
use crate::testkit::route;

fn r(id: &str, uid: &str, last: u8) -> Route {
    route(id, uid, ([127, 10, 0, last], 3000).into(), Some("alice"))
}

fn upsert(id: &str, uid: &str, last: u8) -> Change {
    Change::Upsert {
        route: r(id, uid, last),
    }
}

/// Delivers `frames` to `follower`; returns what it would serve last and what it sent.
fn deliver(
    follower: &mut Follower,
    frames: Vec<ToGateway>,
) -> (Option<RouteTable>, Vec<ToControl>) {
    let mut served = None;
    let mut sent = Vec::new();
    for frame in frames {
        match follower.on_frame(frame) {
            Step::Serve(t) => {
                sent.push(ack(&t));
                served = Some(t);
            }
            Step::Reply(m) | Step::Resync(m) => sent.push(m),
            Step::Refused(why) => panic!("refused: {why}"),
            Step::Nothing => {}
        }
    }
    (served, sent)
}

fn have(msg: &ToControl) -> Option<TableVersion> {
    match msg {
        ToControl::Hello { have, .. } => *have,
        other => panic!("not a hello: {other:?}"),
    }
}

#[test]
fn a_new_gateway_gets_a_chunked_snapshot_then_deltas() {
    let mut log = Log::new(7, 100);
    log.replace_all((0..2_500).map(|i| r(&format!("w{i}"), &format!("u{i}"), (i % 250) as u8)));
    let mut gw = Follower::new(None);
    assert_eq!(have(&gw.hello("gw-1")), None);
    let frames = log.catch_up(None);
    assert_eq!(frames.len(), 3, "2,500 routes in chunks of 1,000");
    let (served, acks) = deliver(&mut gw, frames);
    assert_eq!(served.as_ref().map(RouteTable::len), Some(2_500));
    assert_eq!(acks.len(), 1, "one ack for the whole snapshot");
    let sent = log.table().version();
    let v = log.commit(vec![upsert("new", "u-new", 9)]);
    let (served, _) = deliver(
        &mut gw,
        log.catch_up(Some(TableVersion {
            epoch: 7,
            version: sent,
        })),
    );
    let served = served.expect("a delta is served");
    assert_eq!((served.version(), served.len()), (v, 2_501));
    assert_eq!(
        log.check_ack(7, v, served.hash()),
        AckCheck::InSync,
        "the gateway's table is control's"
    );
}

#[test]
fn a_reconnecting_gateway_gets_only_what_it_missed() {
    let mut log = Log::new(3, 100);
    log.commit(vec![upsert("a", "1", 1)]);
    let mut gw = Follower::new(None);
    deliver(&mut gw, log.catch_up(None));
    // The connection drops; control commits two more versions meanwhile.
    log.commit(vec![upsert("b", "2", 2)]);
    log.commit(vec![Change::Remove {
        workspace_id: WorkspaceId::parse("a").expect("id"),
        pod_uid: "1".into(),
    }]);
    let mut again = Follower::new(gw.table().cloned());
    let from = have(&again.hello("gw-1"));
    assert_eq!(
        from,
        Some(TableVersion {
            epoch: 3,
            version: 1
        })
    );
    let frames = log.catch_up(from);
    assert!(
        frames.iter().all(|f| matches!(f, ToGateway::Delta { .. })),
        "no snapshot: {frames:?}"
    );
    assert_eq!(frames.len(), 2);
    let (served, _) = deliver(&mut again, frames);
    assert_eq!(served.map(|t| t.hash()), Some(log.table().hash()));
    assert!(
        log.catch_up(Some(log.table().at())).is_empty(),
        "a current gateway gets nothing"
    );
}

#[test]
fn a_gateway_behind_the_log_or_from_another_epoch_gets_a_snapshot() {
    let mut log = Log::new(1, 2);
    for i in 0..5u8 {
        log.commit(vec![upsert(&format!("w{i}"), &format!("u{i}"), i)]);
    }
    let behind = log.catch_up(Some(TableVersion {
        epoch: 1,
        version: 1,
    }));
    assert!(
        matches!(behind[0], ToGateway::Snapshot { .. }),
        "log keeps 2 batches"
    );
    let restarted = log.catch_up(Some(TableVersion {
        epoch: 9,
        version: 5,
    }));
    assert!(matches!(restarted[0], ToGateway::Snapshot { .. }));
    let ahead = log.catch_up(Some(TableVersion {
        epoch: 1,
        version: 99,
    }));
    assert!(matches!(ahead[0], ToGateway::Snapshot { .. }));
}

#[test]
fn a_delta_that_does_not_follow_asks_for_a_resync_and_changes_nothing() {
    let mut log = Log::new(1, 100);
    log.commit(vec![upsert("a", "1", 1)]);
    let mut gw = Follower::new(None);
    deliver(&mut gw, log.catch_up(None));
    let before = gw.table().cloned();
    let skipped = ToGateway::Delta {
        epoch: 1,
        base_version: 5,
        version: 6,
        changes: vec![upsert("x", "9", 9)],
    };
    assert!(matches!(
        gw.on_frame(skipped),
        Step::Resync(ToControl::Resync { .. })
    ));
    assert_eq!(gw.table().cloned(), before);
    let mut fresh = Follower::new(None);
    assert!(matches!(
        fresh.on_frame(ToGateway::Delta {
            epoch: 1,
            base_version: 0,
            version: 1,
            changes: vec![]
        }),
        Step::Resync(_)
    ));
}

#[test]
fn snapshot_chunks_out_of_order_are_refused() {
    let mut gw = Follower::new(None);
    let chunk = |n: u32, last: bool| ToGateway::Snapshot {
        epoch: 1,
        version: 1,
        chunk: n,
        last,
        routes: vec![r(&format!("w{n}"), "u", 1)],
    };
    assert_eq!(gw.on_frame(chunk(0, false)), Step::Nothing);
    assert!(
        matches!(gw.on_frame(chunk(2, true)), Step::Resync(_)),
        "chunk 1 is missing"
    );
    assert!(gw.table().is_none());
    assert!(
        matches!(gw.on_frame(chunk(1, true)), Step::Resync(_)),
        "no first chunk"
    );
}

#[test]
fn acks_are_checked_against_the_table_at_that_version() {
    let mut log = Log::new(4, 100);
    let v = log.commit(vec![upsert("a", "1", 1)]);
    let good = log.table().hash();
    assert_eq!(log.check_ack(4, v, good), AckCheck::InSync);
    assert_eq!(log.check_ack(4, v, good ^ 1), AckCheck::Differs);
    assert_eq!(log.check_ack(5, v, good), AckCheck::Unknown);
    assert_eq!(log.check_ack(4, 42, good), AckCheck::Unknown);
}

#[test]
fn pings_are_answered_and_unknown_frames_ignored() {
    let mut gw = Follower::new(None);
    assert_eq!(
        gw.on_frame(ToGateway::Ping { nonce: 3 }),
        Step::Reply(ToControl::Pong { nonce: 3 })
    );
    assert_eq!(gw.on_frame(ToGateway::Unknown), Step::Nothing);
    assert_eq!(
        gw.on_frame(ToGateway::Nack {
            reason: "no".into()
        }),
        Step::Refused("no".into())
    );
}
