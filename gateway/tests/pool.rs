//! The upstream pool at deployment scale, with the gateway binary as operators run it
//! (its own process, so its file descriptors and the upstream's are counted apart):
//! 10,000 workspaces each served twice open one upstream connection each — the default
//! pool keeps every one of them, where the old 8,192 default reconnected for most.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gateway::testkit::free_port;
use kube_sim::kubelet::app::{self, AppIdentity};
use shared::table::Change;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WORKSPACES: usize = 10_000;

/// The gateway process, stopped however the test ends (a failed assertion included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
const CLIENTS: usize = 8;

/// The gateway's `nocrd9_gateway_upstream_connections_total{reused="false"}`.
async fn new_upstream_connections(admin: std::net::SocketAddr) -> u64 {
    let mut s = tokio::net::TcpStream::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut text = String::new();
    s.read_to_string(&mut text)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    text.lines()
        .find(|l| l.starts_with("nocrd9_gateway_upstream_connections_total{reused=\"false\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no upstream connection counter in {text}"))
}

/// One keep-alive client asking for each of `ids` in turn.
async fn serve_each(gw: std::net::SocketAddr, ids: Vec<usize>) {
    let mut s = tokio::net::TcpStream::connect(gw)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for i in ids {
        s.write_all(format!("GET /route/pool-{i}/ HTTP/1.1\r\nHost: gw\r\n\r\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (head, _) = shared::testkit::read_response(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "pool-{i}: {head}");
    }
}

async fn round(gw: std::net::SocketAddr) {
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let ids: Vec<usize> = (0..WORKSPACES).filter(|i| i % CLIENTS == c).collect();
            tokio::spawn(serve_each(gw, ids))
        })
        .collect();
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_workspaces_served_twice_open_one_upstream_connection_each() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("control.sock");
    let (publisher, stop) = control::testkit::route_feed(&socket, 1);
    // One upstream app; every workspace is another pod (pool key), as in a cluster.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let up = upstream.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(app::serve(
        upstream,
        Arc::new(AppIdentity {
            pod: "pool".into(),
            namespace: "default".into(),
        }),
        stop.clone(),
    ));
    let version = publisher.update(
        (0..WORKSPACES)
            .map(|i| Change::Upsert {
                route: shared::testkit::route(&format!("pool-{i}"), &format!("uid-{i}"), up, None),
            })
            .collect(),
    );
    let (port, admin_port) = (free_port(), free_port());
    let gw: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let admin: std::net::SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let child = Command::new(env!("CARGO_BIN_EXE_nocrd9-gateway"))
        .args([
            "--listen",
            &gw.to_string(),
            "--admin-listen",
            &admin.to_string(),
        ])
        .arg("--control-socket")
        .arg(&socket)
        .arg("--upgrade-sock")
        .arg(dir.path().join("upgrade.sock"))
        .args(["--threads", "2", "--exit-with-parent"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let _child = KillOnDrop(child);
    // Connected and holding the table (readiness), then every route applied.
    shared::testkit::eventually_async(
        "the gateway to load its routes",
        Duration::from_secs(60),
        || async {
            let Ok(mut s) = tokio::net::TcpStream::connect(admin).await else {
                return false;
            };
            let _ = s
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
                .await;
            let mut text = String::new();
            let _ = s.read_to_string(&mut text).await;
            text.starts_with("HTTP/1.1 200")
        },
    )
    .await;
    publisher
        .wait_applied(version, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("the gateway never took the routes: {e:?}"));

    round(gw).await;
    let first = new_upstream_connections(admin).await;
    assert!(
        first <= WORKSPACES as u64,
        "{first} connections for {WORKSPACES} workspaces"
    );
    round(gw).await;
    let second = new_upstream_connections(admin).await;
    stop.cancel();
    assert_eq!(
        second,
        first,
        "the second round reconnected {} times: the pool did not keep one connection per workspace",
        second - first
    );
}
