//! kube-sim benchmark (not a test): create N pods, time create → Ready as seen by a
//! watcher, list them, and read kube-sim's memory. Run:
//!
//!     cargo bench --workspace --bench kube_sim -- [--pods 10000,100000] [--concurrency 64]
//!
//! N ≤ 10,000 runs the built-in app for every pod (a listener per pod); larger N uses
//! `--external-workloads` (the machine's 20,000-fd limit forbids 100,000 listeners).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// Pods created one at a time after the bulk, for the idle create → Ready latency.
const SEQUENTIAL: usize = 200;

struct Options {
    pods: Vec<usize>,
    concurrency: usize,
}

fn options() -> Options {
    let mut o = Options {
        pods: vec![10_000, 100_000],
        concurrency: 64,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pods" => {
                o.pods = it
                    .next()
                    .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
                    .unwrap_or_default()
            }
            "--concurrency" => o.concurrency = it.next().and_then(|v| v.parse().ok()).unwrap_or(64),
            _ => {} // cargo passes --bench
        }
    }
    o
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{i}"), "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "workspace", "image": "node:20-alpine", "command": ["sleep", "infinity"],
                 "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}]}],
                 "volumes": [{"name": "ws", "emptyDir": {}}]}
    }))
    .expect("pod")
}

async fn run(n: usize, concurrency: usize) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kc.yaml");
    let external = n > 10_000;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kube-sim"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--pod-cidr",
        "127.64.0.0/10",
        "--plain-http-kubeconfig",
        "--kubeconfig-out",
    ])
    .arg(&kc);
    if external {
        cmd.arg("--external-workloads");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kube-sim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let pid = child.id();
    let idle_rss = rss_kib(pid, "VmRSS:");

    let text = std::fs::read_to_string(&kc).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&text).expect("kc"),
        &Default::default(),
    )
    .await
    .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // The watcher records when each pod is first seen Ready.
    let start_rv = pods
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let ready_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = ready_at.clone();
    let watch_api = pods.clone();
    let watcher = tokio::spawn(async move {
        let mut rv = start_rv;
        let is_ready = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        loop {
            let mut stream = watch_api
                .watch(&WatchParams::default().timeout(290), &rv)
                .await
                .expect("watch")
                .boxed();
            while let Ok(Some(ev)) = stream.try_next().await {
                match ev {
                    WatchEvent::Modified(p) | WatchEvent::Added(p) => {
                        rv = p.metadata.resource_version.clone().unwrap_or_default();
                        if is_ready(&p) {
                            let mut map = seen.lock().expect("lock");
                            map.entry(p.metadata.name.unwrap_or_default())
                                .or_insert_with(Instant::now);
                            if map.len() == n {
                                return;
                            }
                        }
                    }
                    // Fell behind the retained history: relist (as a reflector does).
                    // Pods that turned Ready meanwhile are stamped now: an upper bound.
                    WatchEvent::Error(e) if e.code == 410 => {
                        let list = watch_api
                            .list(&ListParams::default())
                            .await
                            .expect("relist");
                        let mut map = seen.lock().expect("lock");
                        for p in list.items.iter().filter(|p| is_ready(p)) {
                            map.entry(p.metadata.name.clone().unwrap_or_default())
                                .or_insert_with(Instant::now);
                        }
                        if map.len() == n {
                            return;
                        }
                        rv = list.metadata.resource_version.unwrap_or_default();
                        break;
                    }
                    _ => {}
                }
            }
        }
    });

    let created_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            let created_at = created_at.clone();
            async move {
                let p = pod(i);
                let t = Instant::now();
                pods.create(&PostParams::default(), &p)
                    .await
                    .expect("create");
                created_at
                    .lock()
                    .expect("lock")
                    .insert(format!("bench-{i}"), t);
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let create_wall = started.elapsed();
    tokio::time::timeout(Duration::from_secs(900), watcher)
        .await
        .expect("all Ready within 15 minutes")
        .expect("watcher");
    let all_ready = started.elapsed();

    let mut latencies: Vec<Duration> = {
        let ready = ready_at.lock().expect("lock");
        let created = created_at.lock().expect("lock");
        created
            .iter()
            .filter_map(|(name, t)| ready.get(name).map(|r| r.saturating_duration_since(*t)))
            .collect()
    };
    latencies.sort();

    let t = Instant::now();
    let full = pods.list(&ListParams::default()).await.expect("full list");
    let full_list = t.elapsed();
    assert_eq!(full.items.len(), n);
    let t = Instant::now();
    let mut paged = 0;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = pods.list(&lp).await.expect("page");
        paged += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = ListParams::default().limit(500).continue_token(&c),
            None => break,
        }
    }
    let paged_list = t.elapsed();
    assert_eq!(paged, n);
    let t = Instant::now();
    let selected = pods
        .list(
            &ListParams::default()
                .labels("app=bench")
                .fields("metadata.name=bench-7"),
        )
        .await
        .expect("selector list");
    let selector_list = t.elapsed();
    assert_eq!(selected.items.len(), 1);

    // Idle-cluster latency: one pod at a time, create → Ready event.
    let mut idle: Vec<Duration> = Vec::new();
    let mut events = pods
        .watch(
            &WatchParams::default().timeout(290),
            &full.metadata.resource_version.clone().unwrap_or_default(),
        )
        .await
        .expect("watch")
        .boxed();
    for i in 0..SEQUENTIAL {
        let name = format!("seq-{i}");
        let mut p = pod(0);
        p.metadata.name = Some(name.clone());
        let t = Instant::now();
        pods.create(&PostParams::default(), &p)
            .await
            .expect("create");
        loop {
            match events.try_next().await.expect("event").expect("open") {
                WatchEvent::Modified(p) if p.metadata.name.as_deref() == Some(name.as_str()) => {
                    let ready = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| {
                            c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    if ready {
                        idle.push(t.elapsed());
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    idle.sort();

    let rss = rss_kib(pid, "VmRSS:");
    let hwm = rss_kib(pid, "VmHWM:");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;

    format!(
        "| {n} | {} | {:.0} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {:.0} | {:.0} | {:.1} |",
        if external { "external" } else { "built-in app" },
        n as f64 / create_wall.as_secs_f64(),
        ms(all_ready),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        ms(percentile(&idle, 0.5)),
        ms(percentile(&idle, 0.99)),
        ms(full_list),
        ms(paged_list),
        ms(selector_list),
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        (hwm as f64 - idle_rss as f64) / n as f64,
    )
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| pods | workloads | creates/s | all Ready (ms) | create→Ready under load p50 (ms) | p99 (ms) | max (ms) | one at a time p50 / p99 (ms) | full list (ms) | paged list, 500/page (ms) | selector list (ms) | RSS idle (MiB) | RSS after (MiB) | KiB per pod (peak) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for n in o.pods {
        let row = rt.block_on(run(n, o.concurrency));
        println!("{row}");
    }
}
