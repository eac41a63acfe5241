//! The workspace lifecycle across replicas: two controls (each with its own gateway) on
//! one cluster. A workspace whose template says `nogoo9/idle-timeout: 2s` is stopped
//! once idle, never while traffic flows through either gateway or its owner calls
//! `keepalive_workspace`; only the replica holding the culler's Lease stops anything; each
//! stop is a Kubernetes event that kubectl lists. A start slower than the idle timeout is
//! not idleness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use control::config::ControlConfig;
use control::run::Control;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube_sim::{Sim, SimConfig};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

use crate::harness::{TestGateway, eventually, get};

fn call(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default())
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

async fn mcp(control: &Control) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(format!(
        "http://{}/mcp",
        control.http_addr.unwrap_or_else(|| panic!("http"))
    )))
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn pod_exists(pods: &Api<Pod>, id: &str) -> bool {
    pods.list(&ListParams::default().labels(&format!("nogoo9/workspace-id={id}")))
        .await
        .is_ok_and(|l| {
            l.items
                .iter()
                .any(|p| p.metadata.deletion_timestamp.is_none())
        })
}

async fn events_for(events: &Api<Event>, pod: &str, reason: &str) -> usize {
    crate::harness::count_events(events, |e| {
        e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workspaces_are_stopped_once_by_the_leader_and_never_while_in_use() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kube = sim.client().await.unwrap_or_else(|e| panic!("{e}"));
    let start_control = |name: &str| {
        let socket = dir.path().join(format!("{name}.sock"));
        let mut config = ControlConfig::local("default", socket.clone());
        // Activity travels fast here: the gateway reports every 200 ms (test kit), each
        // replica annotates every 200 ms, so 600 ms covers its delay.
        config.activity_annotate_every = Duration::from_millis(200);
        config.activity_slack = Duration::from_millis(600);
        config.cull_every = Duration::from_millis(200);
        config.lease_timing = (Duration::from_secs(3), Duration::from_millis(200));
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
    let gw_a = TestGateway::start(&sock_a).await;
    let gw_b = TestGateway::start(&sock_b).await;
    eventually("one leader", || async {
        (*control_a.leader.borrow() ^ *control_b.leader.borrow()).then_some(())
    })
    .await;

    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "short", "labels": {"nogoo9/pod-template": "true"},
                         "annotations": {"nogoo9/idle-timeout": "2s"}},
            "data": {"spec": "{\"containers\": [{\"name\": \"app\", \"image\": \"node:20-alpine\"}]}"}
        }))
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let agent = mcp(&control_a).await;
    for id in ["idle", "busy", "agent"] {
        let r = agent
            .call_tool(call(
                "spawn_workspace",
                json!({"id": id, "templateRef": "short"}),
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(r.is_error, Some(true), "{r:?}");
    }
    let listed = agent
        .call_tool(call("list_workspaces", json!({})))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = listed.structured_content.unwrap_or_default()["workspaces"].clone();
    let busy = rows
        .as_array()
        .and_then(|r| r.iter().find(|w| w["id"] == "busy"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(busy["idleTimeout"], "2s", "{busy}");
    assert_eq!(busy["state"], "running");
    assert!(busy["cullAt"].is_string(), "{busy}");

    // Traffic to `busy` through the gateway of the replica that does NOT cull (its
    // activity reaches the leader only through the pod annotation), keepalive for `agent`
    // through that replica's MCP, nothing for `idle`: for 5 s, over twice the timeout.
    let a_leads = *control_a.leader.borrow();
    let (follower, follower_gw) = if a_leads {
        (&control_b, &gw_b)
    } else {
        (&control_a, &gw_a)
    };
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let stop_traffic = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let stop = stop_traffic.clone();
        let addr = follower_gw.addr;
        async move {
            while !stop.load(Ordering::Relaxed) {
                let r = get(addr, "/route/busy/x", &[]).await;
                assert_eq!(r.status, 200, "busy stopped while in use: {}", r.body);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    let other = mcp(follower).await;
    let started = tokio::time::Instant::now();
    let mut idle_gone_after = None;
    while started.elapsed() < Duration::from_secs(5) {
        let r = other
            .call_tool(call("keepalive_workspace", json!({"id": "agent"})))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(r.is_error, Some(true), "{r:?}");
        if idle_gone_after.is_none() && !pod_exists(&pods, "idle").await {
            idle_gone_after = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        idle_gone_after.is_some(),
        "the idle workspace was not stopped within 5 s"
    );
    assert!(
        pod_exists(&pods, "busy").await,
        "traffic through the other replica's gateway keeps it"
    );
    assert!(
        pod_exists(&pods, "agent").await,
        "keepalive_workspace keeps it"
    );
    stop_traffic.store(true, Ordering::Relaxed);
    traffic.await.unwrap_or_else(|e| panic!("{e}"));

    // Once idle, they go too.
    eventually("busy and agent to be stopped once idle", || async {
        (!pod_exists(&pods, "busy").await && !pod_exists(&pods, "agent").await).then_some(())
    })
    .await;

    // One stop each, by the leader only; kubectl lists them.
    let events: Api<Event> = Api::namespaced(kube.clone(), "default");
    for id in ["idle", "busy", "agent"] {
        let pod = format!("ws-anonymous-{id}");
        assert_eq!(
            events_for(&events, &pod, "Culled").await,
            1,
            "{pod} culled exactly once"
        );
        assert_eq!(events_for(&events, &pod, "Spawned").await, 1);
        assert_eq!(events_for(&events, &pod, "Ready").await, 1);
    }
    let culled = |c: &Control| {
        c.ctx
            .metrics
            .render(None)
            .lines()
            .find(|l| l.starts_with("nocrd9_workspaces_stopped_by_lifecycle_total "))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (a, b) = (culled(&control_a), culled(&control_b));
    assert_eq!(a + b, 3, "three stops in all");
    assert!(a == 0 || b == 0, "one replica culls: {a} and {b}");
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, sim.kubeconfig()).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new("kubectl")
        .args(["get", "events", "-n", "default"])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .output()
        .unwrap_or_else(|e| panic!("kubectl: {e}"));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Culled")
            && table.contains("pod/ws-anonymous-idle")
            && table.contains("without activity"),
        "{table}"
    );
    let _ = agent.cancel().await;
    let _ = other.cancel().await;
    drop((gw_a, gw_b));
    control_a.stop().await;
    control_b.stop().await;
    sim.shutdown().await;
}

/// A pod that takes longer to start (an image pull; here kube-sim's start delay) than
/// its idle timeout is not culled before it ever answered: idleness counts from Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_start_is_not_idleness() {
    let mut sim = SimConfig::for_tests();
    sim.faults.pod_start_delay_ms = 2000;
    let h = control::testkit::start(sim, |c| {
        c.activity_annotate_every = Duration::from_millis(200);
        c.activity_slack = Duration::from_millis(200);
        c.cull_every = Duration::from_millis(100);
        c.lease_timing = (Duration::from_secs(3), Duration::from_millis(200));
    })
    .await;
    let gw = TestGateway::start(&h.socket()).await;
    eventually("the lease and a connected gateway", || async {
        (*h.control.leader.borrow() && !h.control.publisher.gateways().is_empty()).then_some(())
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(h.kube().await, "default");
    let t = crate::harness::template_config_map(
        "quick-idle",
        json!({"nogoo9/idle-timeout": "1s"}),
        json!({"containers": [{"name": "app", "image": "node:20-alpine"}]}),
    );
    cms.create(&PostParams::default(), &t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = mcp(&h.control).await;
    let r = client
        .call_tool(call(
            "spawn_workspace",
            json!({"id": "slow", "templateRef": "quick-idle", "waitTimeoutSeconds": 20}),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(r.is_error, Some(true), "{:?}", r.content);
    let r = get(gw.addr, "/route/slow/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let _ = client.cancel().await;
    drop(gw);
    h.stop().await;
}
