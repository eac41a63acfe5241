//! The simulated kubelet: pod lifecycle, the built-in workspace app, local processes,
//! logs, init failures, crash loops, IP allocation and the kubelet-side faults.

use std::time::Duration;

use futures::{AsyncBufReadExt, SinkExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};
use kube_sim::{Faults, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{self, api_code, api_message, eventually, wait_ready};

fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("pod IP")
}

async fn http_get(addr: &str, path: &str) -> Value {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to pod");
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-Test: 1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The whole answer to a GET, head and body.
async fn raw_get(addr: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to pod");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

fn try_container_state(
    pod: &Pod,
    init: bool,
) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    let status = pod.status.as_ref()?;
    let list = if init {
        status.init_container_statuses.as_ref()
    } else {
        status.container_statuses.as_ref()
    };
    list.and_then(|l| l.first())
}

fn container_state(pod: &Pod, init: bool) -> &k8s_openapi::api::core::v1::ContainerStatus {
    try_container_state(pod, init).expect("container status")
}

#[tokio::test]
async fn a_workspace_pod_runs_and_its_app_answers_http_and_websocket() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("ws"))
        .await
        .expect("create");
    let pod = wait_ready(&pods, "ws").await;
    let status = pod.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.start_time.is_some());
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("kube-sim")
    );
    let ip = pod_ip(&pod);
    assert!(ip.starts_with("127."), "{ip}");
    let c = container_state(&pod, false);
    assert!(c.ready && c.state.as_ref().and_then(|s| s.running.as_ref()).is_some());

    let answer = http_get(&format!("{ip}:3000"), "/x/y?z=1&w=2").await;
    assert_eq!(answer["pod"], "ws");
    assert_eq!(answer["namespace"], "default");
    assert_eq!(answer["method"], "GET");
    assert_eq!(answer["path"], "/x/y");
    assert_eq!(answer["query"], "z=1&w=2");
    assert_eq!(answer["headers"]["x-test"], "1");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{ip}:3000/socket"))
        .await
        .expect("websocket");
    ws.send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .expect("send");
    let echoed = ws.next().await.expect("frame").expect("ok");
    assert_eq!(echoed.into_text().expect("text").as_str(), "hello");

    // Binary frames come back byte for byte, and the first subprotocol offered is chosen.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{ip}:3000/socket"),
    )
    .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "v2.chat, v1.chat".parse().expect("value"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("v2.chat")
    );
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(tokio_tungstenite::tungstenite::Message::binary(
        all_bytes.clone(),
    ))
    .await
    .expect("send");
    let echoed = ws.next().await.expect("frame").expect("ok");
    assert_eq!(echoed.into_data().as_ref(), all_bytes.as_slice());

    // Redirects, cookies and statuses on request.
    let raw = raw_get(
        &format!("{ip}:3000"),
        "/a?redirect=%2Flogin%3Fnext%3D%2Fa&set-cookie=sid%3D1%3B%20Path%3D%2F&set-cookie=t%3D2",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 302"), "{raw}");
    let head = raw.to_ascii_lowercase();
    assert!(head.contains("location: /login?next=/a\r\n"), "{raw}");
    assert!(
        head.contains("set-cookie: sid=1; path=/\r\n") && head.contains("set-cookie: t=2\r\n"),
        "{raw}"
    );
    assert!(
        raw_get(&format!("{ip}:3000"), "/?status=418")
            .await
            .starts_with("HTTP/1.1 418")
    );

    let logs = pods.logs("ws", &LogParams::default()).await.expect("logs");
    assert!(logs.contains("built-in workspace app stands in"), "{logs}");
    // Deleting the pod stops its app and frees the address.
    pods.delete("ws", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(15, "pod gone", || async {
        pods.get_opt("ws")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
    assert!(
        tokio::net::TcpStream::connect(format!("{ip}:3000"))
            .await
            .is_err(),
        "app stopped"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn declared_ports_and_the_workspace_port_annotation_are_served() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    let pod = harness::pod_from(json!({
        "metadata": {"name": "ports", "annotations": {"nogoo9/workspace-port": "8888"}},
        "spec": {"containers": [{"name": "a", "image": "python:3", "ports": [{"containerPort": 8080}]}]}
    }));
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let ip = pod_ip(&wait_ready(&pods, "ports").await);
    for port in [8080, 8888] {
        assert_eq!(http_get(&format!("{ip}:{port}"), "/").await["pod"], "ports");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn local_processes_get_env_volumes_and_logs() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    let pod = harness::pod_from(json!({
        "metadata": {"name": "local"},
        "spec": {
            "initContainers": [{"name": "init", "image": "local", "command": ["sh", "-c", "echo seeded > /data/seed; echo init-out"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "containers": [{
                "name": "main", "image": "local/tools",
                "command": ["sh", "-c"],
                "args": ["echo line1; cat /data/seed; echo ip=$POD_IP me=$ME ns=$NS; while true; do sleep 0.2; done"],
                "env": [
                    {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
                ],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]
            }],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }
    }));
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let ready = wait_ready(&pods, "local").await;
    let ip = pod_ip(&ready);
    let init = container_state(&ready, true);
    assert_eq!(
        init.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code),
        Some(0)
    );
    let lp = |tail: Option<i64>| LogParams {
        container: Some("main".into()),
        tail_lines: tail,
        ..Default::default()
    };
    let logs = eventually(10, "main logs", || async {
        let l = pods.logs("local", &lp(None)).await.ok()?;
        l.contains("ip=").then_some(l)
    })
    .await;
    assert_eq!(
        logs,
        format!("line1\nseeded\nip={ip} me=local ns=default\n")
    );
    assert_eq!(
        pods.logs("local", &lp(Some(1))).await.expect("tail"),
        format!("ip={ip} me=local ns=default\n")
    );
    let stamped = pods
        .logs(
            "local",
            &LogParams {
                container: Some("main".into()),
                timestamps: true,
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("ts");
    assert!(
        stamped
            .split_once(' ')
            .is_some_and(|(ts, _)| ts.parse::<k8s_openapi::jiff::Timestamp>().is_ok()),
        "{stamped}"
    );
    let limited = pods
        .logs(
            "local",
            &LogParams {
                container: Some("main".into()),
                limit_bytes: Some(3),
                ..Default::default()
            },
        )
        .await
        .expect("limit");
    assert_eq!(limited, "lin");
    assert_eq!(
        pods.logs(
            "local",
            &LogParams {
                container: Some("init".into()),
                ..Default::default()
            }
        )
        .await
        .expect("init logs"),
        "init-out\n"
    );

    // One main container: the server picks it (init containers do not count).
    assert_eq!(
        pods.logs("local", &LogParams::default())
            .await
            .expect("default container"),
        logs
    );
    let two = harness::pod_from(json!({"metadata": {"name": "two"}, "spec": {
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y", "ports": [{"containerPort": 3001}]}]
    }}));
    pods.create(&PostParams::default(), &two)
        .await
        .expect("two");
    let err = pods
        .logs("two", &LogParams::default())
        .await
        .expect_err("ambiguous");
    assert_eq!(api_code(&err), Some(400));
    assert!(api_message(&err).contains("a container name must be specified for pod two, choose one of: [a b] or one of the init containers: [init]"), "{}", api_message(&err));
    let err = pods
        .logs(
            "local",
            &LogParams {
                container: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
        .expect_err("unknown container");
    assert!(api_message(&err).contains("container nope is not valid for pod local"));
    let err = pods
        .logs(
            "local",
            &LogParams {
                container: Some("main".into()),
                previous: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("no previous");
    assert!(
        api_message(&err)
            .contains("previous terminated container \"main\" in pod \"local\" not found")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn following_logs_streams_new_lines() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    let pod = harness::pod_from(
        json!({"metadata": {"name": "ticker"}, "spec": {"containers": [{"name": "t", "image": "local", "command": ["sh", "-c", "i=0; while [ $i -lt 50 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done; sleep 30"]}]}}),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    wait_ready(&pods, "ticker").await;
    let stream = pods
        .log_stream(
            "ticker",
            &LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .expect("follow");
    let mut lines = stream.lines();
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.try_next())
            .await
            .expect("line in time")
            .expect("ok")
            .expect("open");
        seen.push(line);
    }
    assert_eq!(
        seen,
        (0..20).map(|i| format!("tick {i}")).collect::<Vec<_>>()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_init_container_leaves_the_pod_in_init_error() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    let pod = harness::pod_from(json!({"metadata": {"name": "bad-init"}, "spec": {
        "initContainers": [{"name": "init", "image": "local", "command": ["sh", "-c", "echo broken >&2; exit 3"]}],
        "containers": [{"name": "main", "image": "node:20-alpine"}]
    }}));
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let failed = eventually(10, "init failure", || async {
        let p = pods.get("bad-init").await.ok()?;
        let t = try_container_state(&p, true)?
            .state
            .as_ref()?
            .terminated
            .clone()?;
        Some((p, t))
    })
    .await;
    assert_eq!(
        (failed.1.exit_code, failed.1.reason.as_deref()),
        (3, Some("Error"))
    );
    assert_eq!(
        failed.0.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    assert_eq!(
        kube_sim::api::table::pod_status_reason(&serde_json::to_value(&failed.0).expect("json")),
        "Init:Error"
    );
    let logs = pods
        .logs(
            "bad-init",
            &LogParams {
                container: Some("init".into()),
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    assert_eq!(logs, "broken\n");
    let err = pods
        .logs(
            "bad-init",
            &LogParams {
                container: Some("main".into()),
                ..Default::default()
            },
        )
        .await
        .expect_err("waiting");
    assert!(
        api_message(&err).contains("is waiting to start"),
        "{}",
        api_message(&err)
    );
    // Restarted with back-off, so the restart count grows.
    eventually(10, "init restart", || async {
        let p = pods.get("bad-init").await.ok()?;
        (try_container_state(&p, true)?.restart_count >= 1).then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_crashing_container_backs_off_with_restart_count_and_previous_logs() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    let pod = harness::pod_from(
        json!({"metadata": {"name": "crash"}, "spec": {"containers": [{"name": "c", "image": "local", "command": ["sh", "-c", "echo about to fail; exit 1"]}]}}),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let p = eventually(15, "crash loop", || async {
        let p = pods.get("crash").await.ok()?;
        let c = try_container_state(&p, false)?;
        let waiting =
            c.state.as_ref()?.waiting.as_ref()?.reason.as_deref() == Some("CrashLoopBackOff");
        (waiting && c.restart_count >= 1).then_some(p)
    })
    .await;
    let c = container_state(&p, false);
    assert_eq!(
        c.last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code),
        Some(1)
    );
    assert!(!c.ready);
    let previous = pods
        .logs(
            "crash",
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .expect("previous");
    assert_eq!(previous, "about to fail\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn restart_policy_never_ends_in_succeeded_or_failed() {
    let sim = harness::sim().await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    for (name, code, phase) in [("ok", 0, "Succeeded"), ("ko", 2, "Failed")] {
        let pod = harness::pod_from(
            json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "local", "command": ["sh", "-c", format!("exit {code}")]}]}}),
        );
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create");
        eventually(10, phase, || async {
            let p = pods.get(name).await.ok()?;
            (p.status?.phase.as_deref() == Some(phase)).then_some(())
        })
        .await;
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn kubelet_faults_and_ip_allocation() {
    let mut config = SimConfig::for_tests();
    config.reuse_ips = true;
    let sim = harness::sim_with(config).await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("a"))
        .await
        .expect("a");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("b"))
        .await
        .expect("b");
    let ip_a = pod_ip(&wait_ready(&pods, "a").await);
    let ip_b = pod_ip(&wait_ready(&pods, "b").await);
    assert_ne!(ip_a, ip_b, "live pods never share an address");
    pods.delete(
        "a",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("delete");
    eventually(10, "address released", || async {
        (sim.kubelet().ips_in_use() == 1).then_some(())
    })
    .await;
    pods.create(&PostParams::default(), &harness::node_workspace_pod("c"))
        .await
        .expect("c");
    assert_eq!(
        pod_ip(&wait_ready(&pods, "c").await),
        ip_a,
        "--reuse-ips hands the freed address out first"
    );

    sim.set_faults(Faults {
        pods_never_ready: true,
        pod_start_delay_ms: 300,
        ..Default::default()
    })
    .expect("faults");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("slow"))
        .await
        .expect("slow");
    let running = eventually(10, "running but unready", || async {
        let p = pods.get("slow").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
    })
    .await;
    let ready = running
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status);
    assert_eq!(ready.as_deref(), Some("False"));
    sim.shutdown().await;
}

#[tokio::test]
async fn external_workloads_get_addresses_but_nothing_runs() {
    let mut config = SimConfig::for_tests();
    config.external_workloads = true;
    let sim = harness::sim_with(config).await;
    let pods: Api<Pod> = Api::namespaced(sim.client().await.expect("client"), "default");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("ext"))
        .await
        .expect("create");
    let ip = pod_ip(&wait_ready(&pods, "ext").await);
    assert!(
        tokio::net::TcpStream::connect(format!("{ip}:3000"))
            .await
            .is_err(),
        "nothing listens for an external workload"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_claims_files_outlive_its_pod_and_secrets_are_stored_like_the_real_server() {
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
    let sim = harness::sim().await;
    let client = sim.client().await.expect("client");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ctx"}, "stringData": {"API_KEY": "k-1"}
    }))
    .expect("secret");
    let made = secrets
        .create(&PostParams::default(), &s)
        .await
        .expect("create secret");
    assert_eq!(made.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        made.data
            .as_ref()
            .and_then(|d| d.get("API_KEY"))
            .map(|b| b.0.clone()),
        Some(b"k-1".to_vec()),
        "stringData is stored as data"
    );
    assert!(made.string_data.is_none());

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .expect("claim");
    let bound = pvcs
        .create(&PostParams::default(), &claim)
        .await
        .expect("create claim");
    assert_eq!(bound.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    let no_size: PersistentVolumeClaim = serde_json::from_value(
        json!({"metadata": {"name": "bad"}, "spec": {"accessModes": ["ReadWriteOnce"]}}),
    )
    .expect("claim");
    let err = pvcs
        .create(&PostParams::default(), &no_size)
        .await
        .expect_err("invalid");
    assert!(err.to_string().contains("spec.resources[storage]"), "{err}");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, script: &str| {
        harness::pod_from(json!({
            "metadata": {"name": name},
            "spec": {
                "containers": [{"name": "main", "image": "local", "command": ["sh", "-c", script],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
                "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": "data"}}]
            }
        }))
    };
    pods.create(
        &PostParams::default(),
        &pod(
            "writer",
            "echo kept > /work/file; echo written; while true; do sleep 0.2; done",
        ),
    )
    .await
    .expect("writer");
    wait_ready(&pods, "writer").await;
    // Ready means started, not written: wait for the write before deleting the pod.
    eventually(10, "the writer's write", || async {
        let l = pods.logs("writer", &LogParams::default()).await.ok()?;
        l.contains("written").then_some(())
    })
    .await;
    pods.delete("writer", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(15, "writer gone", || async {
        pods.get_opt("writer")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
    pods.create(
        &PostParams::default(),
        &pod("reader", "cat /work/file; while true; do sleep 0.2; done"),
    )
    .await
    .expect("reader");
    wait_ready(&pods, "reader").await;
    let logs = eventually(10, "reader logs", || async {
        let l = pods.logs("reader", &LogParams::default()).await.ok()?;
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(
        logs, "kept\n",
        "the claim's files outlived the pod that wrote them"
    );
    sim.shutdown().await;
}
