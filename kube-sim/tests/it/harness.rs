//! Shared helpers: an in-process simulator per test, and polling with a deadline.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube_sim::{Sim, SimConfig};
use serde_json::json;

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn sim() -> Sim {
    sim_with(SimConfig::for_tests()).await
}

pub async fn sim_with(config: SimConfig) -> Sim {
    init();
    Sim::start(config).await.expect("kube-sim starts")
}

/// Polls `check` until it returns `Some`, failing the test after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pod of the brief's `node-workspace-template`.
pub fn node_workspace_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "workspace"}},
        "spec": {
            "containers": [{
                "name": "workspace",
                "image": "node:20-alpine",
                "command": ["sleep", "infinity"],
                "volumeMounts": [{"name": "workspace-storage", "mountPath": "/workspace"}]
            }],
            "volumes": [{"name": "workspace-storage", "emptyDir": {}}]
        }
    }))
    .expect("valid pod")
}

pub fn pod_from(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("valid pod")
}

/// Waits until the pod is Running and Ready, returning it.
pub async fn wait_ready(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(15, &format!("pod {name} Ready"), || async {
        let pod = pods.get(name).await.ok()?;
        let ready = pod
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(pod)
    })
    .await
}

pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub fn api_reason(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.reason.clone(),
        other => format!("not an API error: {other}"),
    }
}

pub fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => format!("not an API error: {other}"),
    }
}

/// A raw HTTP/1.1 exchange over plain HTTP (for what typed clients cannot send).
pub async fn raw(
    sim: &Sim,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(sim.addr())
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        sim.addr(),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    // The server may answer (413) and close before the whole body is sent.
    let _ = stream.write_all(body).await;
    let mut out = Vec::new();
    // Bounded: a request that unexpectedly streams must fail the test, not hang it.
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "{method} {path}: no complete answer within 10 s"
    );
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

pub fn bearer(sim: &Sim) -> String {
    format!("Bearer {}", sim.token())
}
