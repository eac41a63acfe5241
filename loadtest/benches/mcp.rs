//! MCP benchmark (not a test): `tools/call` latency of the control plane against the
//! simulated cluster, with a real gateway connected to its route socket.
//!
//!     cargo bench --workspace --bench mcp -- [--workspaces 1000] [--spawns 100]
//!
//! - `list_workspaces` with N workspaces: 1 session (sequential calls) and 50
//!   concurrent sessions;
//! - `spawn_workspace` with `wait: false` (returns once the pod is created) and with
//!   `wait: true` (returns once the pod is Running and the gateway applied its route),
//!   1 session and 50 concurrent sessions.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube_sim::SimConfig;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

struct Options {
    workspaces: usize,
    spawns: usize,
}

fn options() -> Options {
    let mut o = Options {
        workspaces: 1000,
        spawns: 100,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--workspaces" => o.workspaces = it.next().and_then(|v| v.parse().ok()).unwrap_or(1000),
            "--spawns" => o.spawns = it.next().and_then(|v| v.parse().ok()).unwrap_or(100),
            _ => {}
        }
    }
    o
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(what: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    println!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.0} |",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0),
        samples.len() as f64 / wall.as_secs_f64()
    );
}

async fn session(url: &str) -> RunningService<rmcp::RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn timed(client: &RunningService<rmcp::RoleClient, ()>, tool: &str, args: Value) -> Duration {
    let started = Instant::now();
    let r = client
        .call_tool(
            CallToolRequestParams::new(tool.to_string())
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(r.is_error, Some(true), "{tool}: {:?}", r.content);
    started.elapsed()
}

/// `calls` calls spread over `sessions` concurrent sessions; per-call latencies.
async fn run(
    url: &str,
    sessions: usize,
    calls: usize,
    tool: &str,
    args: impl Fn(usize) -> Value,
) -> (Vec<Duration>, Duration) {
    let clients: Vec<_> = futures::future::join_all((0..sessions).map(|_| session(url))).await;
    let started = Instant::now();
    let per = calls.div_ceil(sessions);
    let samples: Vec<Duration> = futures::stream::iter(clients.iter().enumerate())
        .map(|(s, c)| {
            let args = &args;
            async move {
                let mut out = Vec::new();
                for k in 0..per {
                    let n = s * per + k;
                    if n < calls {
                        out.push(timed(c, tool, args(n)).await);
                    }
                }
                out
            }
        })
        .buffer_unordered(sessions)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    let wall = started.elapsed();
    for c in clients {
        let _ = c.cancel().await;
    }
    (samples, wall)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = options();
    // A /16 pod network: the test config's /24 holds 254 pods.
    let mut sim_config = SimConfig::for_tests();
    sim_config.pod_cidr.base = std::net::Ipv4Addr::new(127, 10, 0, 0);
    sim_config.pod_cidr.prefix = 16;
    let h = control::testkit::start(sim_config, |c| c.permission_checks = false).await;
    let kube = h.kube().await;
    let url = h.mcp_url();
    // A real gateway on the route socket, so "routable" includes its ack.
    let gw = gateway::testkit::TestGateway::start(&h.socket()).await;
    let control = &h.control;
    shared::testkit::eventually("the gateway to connect", Duration::from_secs(30), || {
        !control.publisher.gateways().is_empty()
    })
    .await;

    // N workspaces, created through the API (fast), then Running.
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let started = Instant::now();
    futures::stream::iter(0..o.workspaces)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("ws-seed-{i}"), "labels": {"nogoo9/type": "workspace", "nogoo9/workspace-id": format!("seed-{i}")}},
                    "spec": {"containers": [{"name": "app", "image": "node:20-alpine"}]}
                }))
                .unwrap_or_else(|e| panic!("{e}"));
                pods.create(&PostParams::default(), &pod).await.unwrap_or_else(|e| panic!("{e}"));
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    shared::testkit::eventually("every seeded route", Duration::from_secs(600), || {
        control.publisher.table().len() >= o.workspaces
    })
    .await;
    eprintln!(
        "seeded {} workspaces in {:.1} s",
        o.workspaces,
        started.elapsed().as_secs_f64()
    );

    println!("\n| call | calls | p50 ms | p99 ms | max ms | calls/s |\n|---|---|---|---|---|---|");
    let list = |_| json!({});
    let (s, w) = run(&url, 1, 100, "list_workspaces", list).await;
    report(
        &format!("list_workspaces, {} workspaces, 1 session", o.workspaces),
        s,
        w,
    );
    let (s, w) = run(&url, 50, 500, "list_workspaces", list).await;
    report(
        &format!("list_workspaces, {} workspaces, 50 sessions", o.workspaces),
        s,
        w,
    );

    let spec = json!({"containers": [{"name": "app", "image": "node:20-alpine"}]});
    let spawn = |prefix: &'static str, wait: bool| {
        let spec = spec.clone();
        move |n: usize| json!({"id": format!("{prefix}-{n}"), "spec": spec, "wait": wait})
    };
    let n = o.spawns;
    let (s, w) = run(&url, 1, n, "spawn_workspace", spawn("c1", false)).await;
    report("spawn_workspace → pod created, 1 session", s, w);
    let (s, w) = run(&url, 50, n, "spawn_workspace", spawn("c50", false)).await;
    report("spawn_workspace → pod created, 50 sessions", s, w);
    let (s, w) = run(&url, 1, n, "spawn_workspace", spawn("r1", true)).await;
    report("spawn_workspace → routable at the gateway, 1 session", s, w);
    let (s, w) = run(&url, 50, n, "spawn_workspace", spawn("r50", true)).await;
    report(
        "spawn_workspace → routable at the gateway, 50 sessions",
        s,
        w,
    );

    drop(gw);
    h.stop().await;
}
