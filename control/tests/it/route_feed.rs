//! End to end on loopback: workspace pods in the simulated cluster become routes at a
//! gateway connected to the publisher's Unix socket — pending first, then Ready with the
//! pod's IP, and gone when the pod is deleted.

use std::time::Duration;

use control::publish::Publisher;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use loadtest::sim::{Sim, SimConfig};
use serde_json::json;
use shared::codec::{read_frame, write_frame};
use shared::ids::WorkspaceId;
use shared::proto::{ToControl, ToGateway};
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

/// Reads frames into `table` until `check` holds (acking each version), within 20 s.
async fn until(
    stream: &mut UnixStream,
    table: &mut RouteTable,
    what: &str,
    check: impl Fn(&RouteTable) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut snapshot = Vec::new();
    while !check(table) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = tokio::time::timeout(left, read_frame::<_, ToGateway>(stream)).await;
        let msg = frame
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("closed"));
        match msg {
            ToGateway::Snapshot {
                epoch,
                version,
                last,
                routes,
                ..
            } => {
                snapshot.extend(routes);
                if !last {
                    continue;
                }
                *table = RouteTable::from_routes(epoch, version, std::mem::take(&mut snapshot));
            }
            ToGateway::Delta {
                epoch,
                base_version,
                version,
                changes,
            } => {
                table
                    .apply(epoch, base_version, version, &changes)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            _ => continue,
        }
        let ack = ToControl::Ack {
            epoch: table.epoch,
            version: table.version,
            table_hash: table.hash(),
        };
        write_frame(stream, &ack)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
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
        pods.clone(),
        3000,
        publisher.clone(),
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
    write_frame(
        &mut gw,
        &ToControl::Hello {
            proto: 1,
            gateway_id: "gw-it".into(),
            have: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut table = RouteTable::default();
    until(&mut gw, &mut table, "the first snapshot", |t| t.epoch == 7).await;

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
    until(&mut gw, &mut table, "the Ready route", |t| {
        t.get(&id).is_some_and(|r| r.state == RouteState::Ready)
    })
    .await;
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
        .wait_applied(table.version, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    pods.delete("ws-alice-demo", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until(&mut gw, &mut table, "the route's removal", |t| {
        t.get(&id).is_none()
    })
    .await;
    assert_eq!(table, publisher.table());
    shutdown.cancel();
    sim.shutdown().await;
}
