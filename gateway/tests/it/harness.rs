//! Every fixture the gateway's integration tests share: the in-process gateway
//! (`gateway::testkit`, which keeps its store/sync/metrics handles), a control stand-in
//! (the real publisher on a Unix socket), upstream apps, route builders and HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use control::publish::Publisher;
use kube_sim::kubelet::app::{self, AppIdentity};
use shared::route::Route;
use shared::table::Change;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub use gateway::testkit::{Options, TestGateway};

/// The real publisher on a Unix socket in a temporary directory: control, as far as a
/// gateway can tell.
pub struct Control {
    pub publisher: Publisher,
    pub stop: CancellationToken,
    pub socket: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// A control stand-in on a fresh socket (epoch 1).
pub fn control() -> Control {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let socket = dir.path().join("control.sock");
    let mut ctl = control_at(&socket, 1);
    ctl._dir = Some(dir);
    ctl
}

/// A control stand-in on `socket` with `epoch` (a restart uses a new epoch).
pub fn control_at(socket: &std::path::Path, epoch: u64) -> Control {
    let (publisher, stop) = control::testkit::route_feed(socket, epoch);
    Control {
        publisher,
        stop,
        socket: socket.to_path_buf(),
        _dir: None,
    }
}

/// Publishes `changes` and waits until every connected gateway has applied them.
pub async fn publish(ctl: &Control, changes: Vec<Change>) {
    let v = ctl.publisher.update(changes);
    ctl.publisher
        .wait_applied(v, Duration::from_secs(10))
        .await
        .expect("every gateway applies the change");
}

/// The route of workspace `id` (pod `uid-<id>`) at `addr`.
pub fn route_to(id: &str, addr: SocketAddr, owner: Option<&str>) -> Route {
    shared::testkit::route(id, &format!("uid-{id}"), addr, owner)
}

/// An upsert of [`route_to`].
pub fn route(id: &str, addr: SocketAddr, owner: Option<&str>) -> Change {
    Change::Upsert {
        route: route_to(id, addr, owner),
    }
}

/// The simulated cluster's built-in workspace app (HTTP echo and WebSockets) on loopback.
pub async fn echo_app(stop: &CancellationToken) -> SocketAddr {
    echo_app_as(stop, "ws-owned").await
}

/// [`echo_app`] answering as pod `pod`.
pub async fn echo_app_as(stop: &CancellationToken, pod: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let id = Arc::new(AppIdentity {
        pod: pod.into(),
        namespace: "default".into(),
    });
    tokio::spawn(app::serve(listener, id, stop.clone()));
    addr
}

/// Serves an axum app on a loopback port; returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A response read whole (the request says `Connection: close`).
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Reply {
    get_host(addr, "gw.test:8080", target, headers).await
}

/// A GET's text, asking the gateway to close after it or not.
fn get_request(host: &str, target: &str, headers: &[(&str, &str)], close: bool) -> String {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n");
    if close {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Sends a GET on a kept-alive connection `s` (no `Connection` header) and reads its
/// answer, which must carry a `Content-Length`: (head, body).
pub async fn keep_alive_get(
    s: &mut tokio::net::TcpStream,
    target: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    s.write_all(get_request("gw.test:8080", target, headers, false).as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    shared::testkit::read_response(s).await
}

/// A GET with this `Host` (host routing names the workspace by it).
pub async fn get_host(
    addr: SocketAddr,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(get_request(host, target, headers, true).as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap_or_else(|_| panic!("no answer to {target}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
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

/// How many Kubernetes events in `events`' namespace match `which`.
pub async fn count_events(
    events: &kube::Api<k8s_openapi::api::core::v1::Event>,
    which: impl Fn(&k8s_openapi::api::core::v1::Event) -> bool,
) -> usize {
    events
        .list(&kube::api::ListParams::default())
        .await
        .map(|l| l.items.iter().filter(|e| which(e)).count())
        .unwrap_or(0)
}

/// Control on a fresh kube-sim with tokens checked by `auth` and lifecycle timings fit for
/// tests (then `tune`), and a gateway on its socket; returned once this control holds the
/// culler's Lease and the gateway is connected.
pub async fn lifecycle_pair(
    auth: Option<Arc<shared::auth::Verifier>>,
    tune: impl FnOnce(&mut control::config::ControlConfig),
) -> (control::testkit::Harness, TestGateway) {
    let h = control::testkit::start(kube_sim::SimConfig::for_tests(), |c| {
        c.auth = auth.clone();
        c.cull_every = Duration::from_millis(200);
        c.activity_annotate_every = Duration::from_millis(200);
        c.activity_slack = Duration::from_millis(600);
        c.lease_timing = (Duration::from_secs(3), Duration::from_millis(200));
        tune(c);
    })
    .await;
    let gw = TestGateway::start_with(
        &h.socket(),
        Options {
            auth,
            ..Default::default()
        },
    )
    .await;
    eventually("the culler's lease and a connected gateway", || async {
        (*h.control.leader.borrow() && !h.control.publisher.gateways().is_empty()).then_some(())
    })
    .await;
    (h, gw)
}

/// A template ConfigMap: this pod spec, these spawner annotations.
pub fn template_config_map(
    name: &str,
    annotations: serde_json::Value,
    spec: serde_json::Value,
) -> k8s_openapi::api::core::v1::ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"nogoo9/pod-template": "true"},
                     "annotations": annotations},
        "data": {"spec": spec.to_string()}
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}
