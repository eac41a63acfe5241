//! End to end with the real control plane on the simulated cluster: an agent spawns a
//! workspace over MCP, and the very first request to the returned URL succeeds (no
//! retry: spawn returns only once this gateway has applied the route); after stop, 404.

use std::time::Duration;

use control::config::ControlConfig;
use control::run::Control;
use kube_sim::{Sim, SimConfig};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

use crate::harness::{Options, TestGateway, eventually, get};

const SECRET: &str = "e2e-test-secret-e2e-test-secret-e2e-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_then_first_request_succeeds_then_stop_gives_404() {
    let auth = shared::auth::AuthArgs::hs256(SECRET)
        .build()
        .expect("a valid secret");
    let h = control::testkit::start(SimConfig::for_tests(), |c| {
        c.gateway_url = Some("http://gw.test:8080".into());
        c.auth = auth.clone();
        c.activity_annotate_every = Duration::from_secs(1);
    })
    .await;
    let socket = h.socket();
    let verifier = auth;
    let gw = TestGateway::start_with(
        &socket,
        Options {
            auth: verifier,
            ..Default::default()
        },
    )
    .await;
    eventually("the gateway connected to control", || async {
        (!h.control.publisher.gateways().is_empty()).then_some(())
    })
    .await;

    let token = shared::auth::mint::hs256(
        SECRET.as_bytes(),
        &shared::auth::mint::claims_for("agent-7", 600),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!(
        "http://{}/mcp",
        h.control.http_addr.unwrap_or_else(|| panic!("http"))
    ));
    config.auth_header = Some(token.clone());
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let spawn = |id: &str| {
        CallToolRequestParams::new("spawn_workspace").with_arguments(
            json!({"id": id, "spec": {"containers": [{"name": "app", "image": "node:20-alpine"}]}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
    };
    let bearer = format!("Bearer {token}");
    // Several times, so a race between "spawn returned" and "route applied" would show.
    for i in 0..5 {
        let id = format!("e2e-{i}");
        let r = tokio::time::timeout(Duration::from_secs(60), client.call_tool(spawn(&id)))
            .await
            .unwrap_or_else(|_| panic!("spawn timed out"))
            .unwrap_or_else(|e| panic!("{e}"));
        let out = r.structured_content.clone().unwrap_or_default();
        assert_eq!(out["status"], "ready", "{out}");
        assert_eq!(out["url"], format!("http://gw.test:8080/route/{id}/"));
        let first = get(
            gw.addr,
            &format!("/route/{id}/first"),
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(
            first.status, 200,
            "the first request succeeds: {}",
            first.body
        );
        assert_eq!(first.json()["path"], "/first");
        assert_eq!(first.json()["headers"]["x-forwarded-user"], "agent-7");
    }
    // The gateway reported the traffic: list_workspaces shows it, and the pod is annotated.
    let list = CallToolRequestParams::new("list_workspaces")
        .with_arguments(json!({}).as_object().cloned().unwrap_or_default());
    let rows = eventually("lastActivity in list_workspaces", || async {
        let r = client.call_tool(list.clone()).await.ok()?;
        let rows = r.structured_content?["workspaces"].clone();
        rows.as_array()?
            .iter()
            .all(|w| w["lastActivity"].is_string())
            .then_some(rows)
    })
    .await;
    assert_eq!(rows.as_array().map(Vec::len), Some(5), "{rows}");
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(
        h.sim.client().await.unwrap_or_else(|e| panic!("{e}")),
        "default",
    );
    eventually("nogoo9/last-activity on the pod", || async {
        let pod = pods.get("ws-agent-7-e2e-0").await.ok()?;
        pod.metadata
            .annotations?
            .get("nogoo9/last-activity")
            .filter(|v| v.ends_with('Z'))
            .cloned()
    })
    .await;
    let stop = CallToolRequestParams::new("stop_workspace").with_arguments(
        json!({"id": "e2e-0"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let r = client
        .call_tool(stop)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(r.is_error, Some(true));
    eventually("the stopped workspace answers 404", || async {
        let r = get(gw.addr, "/route/e2e-0/", &[("authorization", &bearer)]).await;
        (r.status == 404).then_some(())
    })
    .await;
    let _ = client.cancel().await;
    drop(gw);
    h.stop().await;
}

/// Multiple replicas: two gateways on one control, and a second control + gateway pair
/// (another replica of the Deployment) on the same cluster. Every gateway routes every
/// workspace; a spawn returns once every gateway of its own control has the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_routes_every_workspace() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kube = sim.client().await.unwrap_or_else(|e| panic!("{e}"));
    let start_control = |name: &str| {
        let socket = dir.path().join(format!("{name}.sock"));
        let config = ControlConfig::local("default", socket.clone());
        let kube = kube.clone();
        async move {
            let control = Control::start(&config, kube)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (socket, control)
        }
    };
    let (sock_a, control_a) = start_control("a").await;
    let (sock_b, control_b) = start_control("b").await;
    let a1 = TestGateway::start(&sock_a).await;
    let a2 = TestGateway::start(&sock_a).await;
    let b1 = TestGateway::start(&sock_b).await;
    eventually("two gateways on control A, one on B", || async {
        (control_a.publisher.gateways().len() == 2 && control_b.publisher.gateways().len() == 1)
            .then_some(())
    })
    .await;
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://{}/mcp",
            control_a.http_addr.unwrap_or_else(|| panic!("http"))
        )))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let spawn = CallToolRequestParams::new("spawn_workspace").with_arguments(
        json!({"id": "multi", "spec": {"containers": [{"name": "app", "image": "node:20-alpine"}]}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let r = client
        .call_tool(spawn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.structured_content.unwrap_or_default()["status"], "ready");
    for gw in [&a1, &a2] {
        let first = get(gw.addr, "/route/multi/x", &[]).await;
        assert_eq!(
            first.status, 200,
            "every gateway of control A, first try: {}",
            first.body
        );
    }
    eventually("the other replica's gateway routes it too", || async {
        (get(b1.addr, "/route/multi/x", &[]).await.status == 200).then_some(())
    })
    .await;
    let _ = client.cancel().await;
    drop((a1, a2, b1));
    control_a.stop().await;
    control_b.stop().await;
    sim.shutdown().await;
}
