//! Lifecycle benchmark (not a test): how long an agent waits for its first 200 through
//! the gateway, against the simulated cluster with a real control plane and gateway and
//! tokens on.
//!
//!     cargo bench --workspace --bench lifecycle -- [--runs 10] [--start-delay-ms 2000]
//!
//! - spawn → first 200, cold: a template without a pool; the kubelet waits
//!   `--start-delay-ms` before starting a pod (standing in for an image pull);
//! - spawn → first 200, warm: the same template with `nogoo9/warm-pool-size` = runs
//!   (`nogoo9/context-delivery: file`), the pool Ready before the first spawn;
//! - wake → first 200: a suspended workspace with `nogoo9/wake-on-request`, the owner's
//!   first request held by the gateway until the new pod answers (same start delay).
//!
//! Each spawn is `spawn_workspace` (waits until routable) then GETs until 200.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube_sim::SimConfig;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "lifecycle-bench-secret-lifecycle-bench-x";

struct Options {
    runs: usize,
    start_delay_ms: u64,
}

fn options() -> Options {
    let mut o = Options {
        runs: 10,
        start_delay_ms: 2000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => o.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(10),
            "--start-delay-ms" => {
                o.start_delay_ms = it.next().and_then(|v| v.parse().ok()).unwrap_or(2000)
            }
            _ => {}
        }
    }
    o.runs = o.runs.clamp(1, 50);
    o
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        ms(samples[i])
    };
    println!(
        "| {what} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        samples.len(),
        ms(samples[0]),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

/// The status of one GET through the gateway (the wait is bounded by the gateway's own
/// wake timeout, 30 s).
async fn status(addr: SocketAddr, target: &str, bearer: &str) -> u16 {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: gw.bench\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out)).await;
    if !matches!(read, Ok(Ok(_))) {
        return 0;
    }
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn first_200(addr: SocketAddr, id: &str, bearer: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while status(addr, &format!("/route/{id}/"), bearer).await != 200 {
        assert!(Instant::now() < deadline, "{id} never answered 200");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn call(client: &RunningService<rmcp::RoleClient, ()>, tool: &str, args: Value) -> Value {
    let r = client
        .call_tool(
            CallToolRequestParams::new(tool.to_string())
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(r.is_error, Some(true), "{tool}: {:?}", r.content);
    r.structured_content.unwrap_or_default()
}

fn template(name: &str, annotations: Value) -> ConfigMap {
    let spec = json!({"containers": [{"name": "app", "image": "node:20-alpine"}]});
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"nogoo9/pod-template": "true"}, "annotations": annotations},
        "data": {"spec": spec.to_string()}
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn wait_for<F, Fut>(what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(300);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = options();
    let mut sim = SimConfig::for_tests();
    sim.faults.pod_start_delay_ms = o.start_delay_ms;
    let auth = shared::auth::AuthArgs::hs256(SECRET)
        .build()
        .unwrap_or_else(|e| panic!("{e:?}"));
    let h = control::testkit::start(sim, |c| {
        c.auth = auth.clone();
        c.permission_checks = false;
        c.activity_annotate_every = Duration::from_millis(200);
        c.activity_slack = Duration::from_millis(500);
        c.cull_every = Duration::from_millis(200);
        c.lease_timing = (Duration::from_secs(3), Duration::from_millis(200));
    })
    .await;
    let gw = gateway::testkit::TestGateway::start_with(
        &h.socket(),
        gateway::testkit::Options {
            auth: auth.clone(),
            ..Default::default()
        },
    )
    .await;
    let control = &h.control;
    wait_for("the lease and the gateway", || async {
        *control.leader.borrow() && !control.publisher.gateways().is_empty()
    })
    .await;
    let kube = h.kube().await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let runs = o.runs;
    for t in [
        template("cold", json!({})),
        template(
            "warm",
            json!({"nogoo9/warm-pool-size": runs.to_string(), "nogoo9/context-delivery": "file"}),
        ),
        template(
            "nap",
            json!({"nogoo9/idle-timeout": "3s", "nogoo9/idle-action": "suspend",
                   "nogoo9/wake-on-request": "true"}),
        ),
    ] {
        cms.create(&PostParams::default(), &t)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let token = shared::auth::mint::hs256(
        SECRET.as_bytes(),
        &shared::auth::mint::claims_for("bench", 3600),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bearer = format!("Bearer {token}");
    let mut config = StreamableHttpClientTransportConfig::with_uri(h.mcp_url());
    config.auth_header = Some(token.clone());
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .unwrap_or_else(|e| panic!("{e}"));

    // Cold.
    let mut cold = Vec::new();
    for i in 0..runs {
        let id = format!("cold-{i}");
        let started = Instant::now();
        call(
            &client,
            "spawn_workspace",
            json!({"id": id, "templateRef": "cold"}),
        )
        .await;
        first_200(gw.addr, &id, &bearer).await;
        cold.push(started.elapsed());
    }

    // Warm: the whole pool Ready first.
    wait_for("the warm pool", || async {
        pods.list(&ListParams::default().labels("nogoo9/type=pool"))
            .await
            .is_ok_and(|l| {
                l.items
                    .iter()
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count()
                    >= runs
            })
    })
    .await;
    let mut warm = Vec::new();
    let mut pooled = 0;
    for i in 0..runs {
        let id = format!("warm-{i}");
        let started = Instant::now();
        let out = call(
            &client,
            "spawn_workspace",
            json!({"id": id, "templateRef": "warm"}),
        )
        .await;
        first_200(gw.addr, &id, &bearer).await;
        warm.push(started.elapsed());
        pooled += usize::from(out["fromPool"] == true);
    }

    // Wake: spawn, let it be suspended, then the owner's request.
    let mut wake = Vec::new();
    for i in 0..runs {
        let id = format!("nap-{i}");
        call(
            &client,
            "spawn_workspace",
            json!({"id": id, "templateRef": "nap"}),
        )
        .await;
        first_200(gw.addr, &id, &bearer).await;
        let claim = format!("nogoo9-ws-{id}");
        wait_for("the suspension", || async {
            cms.get_opt(&claim).await.ok().flatten().is_some_and(|c| {
                c.data.unwrap_or_default().get("state").map(String::as_str) == Some("suspended")
            })
        })
        .await;
        let started = Instant::now();
        first_200(gw.addr, &id, &bearer).await;
        wake.push(started.elapsed());
    }

    println!(
        "\nkube-sim pod start delay {} ms, {runs} runs each; {pooled}/{runs} warm spawns took a pool pod\n",
        o.start_delay_ms
    );
    println!("| path | runs | min ms | p50 ms | p90 ms | max ms |\n|---|---|---|---|---|---|");
    report("spawn → first 200, cold", cold);
    report("spawn → first 200, warm pool", warm);
    report("wake on request → first 200", wake);
    let _ = client.cancel().await;
    drop(gw);
    h.stop().await;
}
