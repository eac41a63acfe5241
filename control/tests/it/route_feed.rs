//! End to end on loopback: workspace pods in the simulated cluster become routes at a
//! gateway connected to the publisher's Unix socket — pending first, then Ready with the
//! pod's IP, and gone when the pod is deleted.

use std::time::Duration;

use control::publish::Publisher;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube_sim::{Sim, SimConfig};
use serde_json::json;
use shared::codec::{read_frame, write_frame};
use shared::feed::{self, Follower, Step};
use shared::ids::WorkspaceId;
use shared::proto::ToGateway;
use shared::route::RouteState;
use shared::table::RouteTable;
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

fn workspace_pod(name: &str, id: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {"nogoo9/type": "workspace", "nogoo9/workspace-id": id},
            "annotations": {"nogoo9/user-sub": "alice", "nogoo9/workspace-port": "8080"}
        },
        "spec": {"containers": [{"name": "w", "image": "node:20-alpine", "ports": [{"containerPort": 8080}]}]}
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Feeds frames to the protocol's follower (acking each table it serves) until `check`
/// holds for the table, within 20 s.
async fn until(
    stream: &mut UnixStream,
    follower: &mut Follower,
    what: &str,
    check: impl Fn(&RouteTable) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !follower.table().is_some_and(&check) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = tokio::time::timeout(left, read_frame::<_, ToGateway>(stream)).await;
        let msg = frame
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("a frame")
            .expect("the channel stays open");
        match follower.on_frame(msg) {
            Step::Serve(table) => write_frame(stream, &feed::ack(&table)).await.expect("ack"),
            Step::Reply(reply) => write_frame(stream, &reply).await.expect("reply"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn workspace_pods_become_routes_at_a_connected_gateway() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = sim.client().await.unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(client, "default");

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("control.sock");
    let publisher = Publisher::new(7);
    let shutdown = CancellationToken::new();
    let listener = Publisher::bind(&socket).unwrap_or_else(|e| panic!("{e}"));
    let (synced_tx, mut synced) = tokio::sync::watch::channel(false);
    tokio::spawn({
        let (p, s) = (publisher.clone(), shutdown.clone());
        async move { p.serve(listener, s).await }
    });
    tokio::spawn(control::watch::run(
        control::watch::WatchTargets {
            pods: pods.clone(),
            claims: kube::Api::namespaced(pods.clone().into_client(), "default"),
            index: std::sync::Arc::new(std::sync::Mutex::new(control::claims::Index::new(3000))),
            publisher: publisher.clone(),
        },
        synced_tx,
        shutdown.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(10), synced.wait_for(|s| *s))
        .await
        .unwrap_or_else(|_| panic!("first list synced"))
        .unwrap_or_else(|e| panic!("{e}"));

    let mut gw = UnixStream::connect(&socket)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut follower = Follower::new(None);
    write_frame(&mut gw, &follower.hello("gw-it"))
        .await
        .expect("hello");
    until(&mut gw, &mut follower, "the first snapshot", |t| {
        t.epoch() == 7
    })
    .await;

    pods.create(
        &PostParams::default(),
        &workspace_pod("ws-alice-demo", "demo"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // A pod that is not a workspace never becomes a route.
    let mut plain = workspace_pod("not-a-workspace", "x");
    plain.metadata.labels = None;
    pods.create(&PostParams::default(), &plain)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = WorkspaceId::parse("demo").unwrap_or_else(|e| panic!("{e}"));
    until(&mut gw, &mut follower, "the Ready route", |t| {
        t.get(&id).is_some_and(|r| r.state == RouteState::Ready)
    })
    .await;
    let table = follower.table().cloned().expect("a table");
    let route = table.get(&id).cloned().unwrap_or_else(|| panic!("route"));
    let pod = pods
        .get("ws-alice-demo")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ip = pod.status.and_then(|s| s.pod_ip).unwrap_or_default();
    assert_eq!(
        route.upstream().map(|a| a.to_string()),
        Some(format!("{ip}:8080"))
    );
    assert_eq!(route.pod_uid, pod.metadata.uid.unwrap_or_default());
    assert_eq!(route.owner_sub.as_deref(), Some("alice"));
    assert_eq!(table.len(), 1);
    // The gateway acked the version that made it Ready.
    publisher
        .wait_applied(table.version(), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    pods.delete("ws-alice-demo", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until(&mut gw, &mut follower, "the route's removal", |t| {
        t.get(&id).is_none()
    })
    .await;
    assert_eq!(follower.table(), Some(&publisher.table()));
    shutdown.cancel();
    sim.shutdown().await;
}
