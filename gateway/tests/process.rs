//! The gateway binary as operators run it: SIGTERM lets in-flight requests finish within
//! the grace period while refusing new connections, and the access log has one JSON line
//! per request with the workspace, status and error code — and never a token or cookie.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::table::Change;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const SECRET: &str = "process-test-secret-process-test-secret";

use gateway::testkit::free_port;

async fn raw(addr: SocketAddr, req: &str) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// An upstream whose `/slow` says it `arrived`, then answers once `release`d.
async fn upstream(arrived: Arc<Notify>, release: Arc<Notify>) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(move || async move {
                arrived.notify_one();
                release.notified().await;
                "slow but complete"
            }),
        )
        .fallback(|| async { "ok" });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

/// The gateway binary on `port` with one thread and a 5 s grace period, logging to `log`.
fn spawn_gateway(port: u16, dir: &Path, control: &Path, log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nocrd9-gateway"));
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{}", free_port()),
    ])
    .arg("--control-socket")
    .arg(control)
    .arg("--upgrade-sock")
    .arg(dir.join("upgrade.sock"))
    .args([
        "--grace-period-secs",
        "5",
        "--threads",
        "1",
        "--exit-with-parent",
    ])
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(log).unwrap_or_else(|e| panic!("{e}")));
    cmd
}

/// Publishes a Ready route to `addr` for workspace `id`.
fn route(id: &str, addr: SocketAddr, owner: Option<&str>) -> Change {
    Change::Upsert {
        route: shared::testkit::route(id, &format!("uid-{id}"), addr, owner),
    }
}

/// Sends the gateway SIGTERM and waits until its listener refuses connections.
async fn sigterm_until_closed(child: &std::process::Child, addr: SocketAddr) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
    shared::testkit::eventually_async(
        "the listener to close after SIGTERM",
        Duration::from_secs(10),
        || async { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
}

/// Waits until the gateway process has exited, and says how.
async fn exited(child: &mut std::process::Child) -> std::process::ExitStatus {
    shared::testkit::eventually(
        "the gateway to exit within its grace period",
        Duration::from_secs(20),
        || matches!(child.try_wait(), Ok(Some(_))),
    )
    .await;
    child.wait().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_the_access_log_never_holds_a_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("control.sock");
    let (publisher, stop) = control::testkit::route_feed(&socket, 1);
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let up = upstream(arrived.clone(), release.clone()).await;
    publisher.update(vec![route("logged", up, Some("alice"))]);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log_path = dir.path().join("gateway.log");
    let mut child = spawn_gateway(port, dir.path(), &socket, &log_path)
        .env("AUTH_ENABLED", "true")
        .env("JWT_SECRET", SECRET)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let token = shared::auth::mint::hs256(
        SECRET.as_bytes(),
        &shared::auth::mint::claims_for("alice", 600),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: gw\r\n{extra}Connection: close\r\n\r\n")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = raw(
            addr,
            &get(
                "/route/logged/",
                &format!("Authorization: Bearer {token}\r\n"),
            ),
        )
        .await;
        if r.as_deref().is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway never served: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The token by query and by cookie, and a refusal.
    let q = raw(
        addr,
        &get(&format!("/route/logged/q?token={token}&keep=1"), ""),
    )
    .await;
    assert!(q.is_ok_and(|r| r.starts_with("HTTP/1.1 200")));
    let c = raw(
        addr,
        &get(
            "/route/logged/c",
            &format!("Cookie: nocr_token={token}\r\n"),
        ),
    )
    .await;
    assert!(c.is_ok_and(|r| r.starts_with("HTTP/1.1 200")));
    let refused = raw(
        addr,
        &get("/route/logged/", "Authorization: Bearer not-a-token\r\n"),
    )
    .await;
    assert!(refused.is_ok_and(|r| r.starts_with("HTTP/1.1 401")));

    // SIGTERM with a request in flight: it completes; new connections are refused.
    let slow = tokio::spawn({
        let req = get(
            "/route/logged/slow",
            &format!("Authorization: Bearer {token}\r\n"),
        );
        async move { raw(addr, &req).await }
    });
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .unwrap_or_else(|_| panic!("the slow request never reached the upstream"));
    sigterm_until_closed(&child, addr).await;
    release.notify_one();
    let answer = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap_or_else(|_| panic!("in-flight request"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("in-flight request failed: {e}"));
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow but complete"),
        "{answer}"
    );
    let status = exited(&mut child).await;
    assert!(status.success(), "{status:?}");

    // The access log: one JSON line per request, never the token.
    let mut log = String::new();
    std::fs::File::open(&log_path)
        .and_then(|mut f| f.read_to_string(&mut log))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!log.contains(&token), "a token leaked into the log");
    assert!(!log.contains("not-a-token"));
    let access: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect();
    assert!(access.len() >= 5, "{log}");
    let refusal = access
        .iter()
        .find(|v| v["fields"]["status"] == 401)
        .unwrap_or_else(|| panic!("the 401 is logged: {log}"));
    assert_eq!(refusal["fields"]["error"], "unauthorized");
    assert_eq!(refusal["fields"]["auth_reason"], "malformed_token");
    assert_eq!(refusal["fields"]["workspace_id"], "logged");
    // The in-flight request was answered after SIGTERM, and logged then.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    let sigterm = lines
        .iter()
        .position(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("SIGTERM"))
        })
        .unwrap_or_else(|| panic!("the SIGTERM is logged: {log}"));
    let slow_line = lines[sigterm..]
        .iter()
        .find(|v| v["target"] == "access" && v["fields"]["status"] == 200)
        .unwrap_or_else(|| panic!("the drained request is logged after SIGTERM: {log}"));
    assert_eq!(slow_line["fields"]["upstream"], up.to_string());
    stop.cancel();
}

/// Graceful shutdown (SIGTERM, and the old process of an upgrade after SIGQUIT) closes
/// kept-alive connections that wait for their next request, which clients retry; but a
/// connection the gateway accepted before it stopped listening gets its first request
/// answered even when that request arrives after the shutdown began (Pingora closed it
/// unanswered: `gateway::upgrade` saw it about once in 7,000 requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_kept_alive_connections_and_answers_accepted_new_ones() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("control.sock");
    let (publisher, stop) = control::testkit::route_feed(&socket, 1);
    let up = upstream(Arc::new(Notify::new()), Arc::new(Notify::new())).await;
    publisher.update(vec![route("plain", up, None)]);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log_path = dir.path().join("gateway.log");
    let mut child = spawn_gateway(port, dir.path(), &socket, &log_path)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let close =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    shared::testkit::eventually_async(
        "the gateway to serve the workspace",
        Duration::from_secs(20),
        || async {
            raw(addr, &close("/route/plain/"))
                .await
                .is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
        },
    )
    .await;

    // A kept-alive connection, idle after one answered request.
    let mut idle = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    idle.write_all(b"GET /route/plain/first HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (head, body) = shared::testkit::read_response(&mut idle).await;
    assert!(
        head.starts_with("HTTP/1.1 200") && body == "ok",
        "{head}\n\n{body}"
    );
    // A new connection whose request has not been sent yet.
    let mut fresh = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Connections are accepted in order: once a later one is answered, `fresh` is the
    // gateway's.
    let later = raw(addr, &close("/route/plain/later")).await;
    assert!(later.is_ok_and(|r| r.starts_with("HTTP/1.1 200")));

    sigterm_until_closed(&child, addr).await;

    // The idle connection is closed (end of stream, nothing more written).
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("the idle connection stayed open after SIGTERM"));
    assert!(
        closed.is_ok_and(|n| n == 0),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    // The accepted connection's first request, sent after the shutdown began: answered,
    // and the connection closed after it.
    fresh
        .write_all(
            close("/route/plain/late")
                .replace("Connection: close\r\n", "")
                .as_bytes(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut late = String::new();
    tokio::time::timeout(Duration::from_secs(10), fresh.read_to_string(&mut late))
        .await
        .unwrap_or_else(|_| panic!("no answer on the accepted connection"))
        .unwrap_or_else(|e| panic!("the accepted connection failed: {e}"));
    assert!(late.starts_with("HTTP/1.1 200"), "{late:?}");
    assert!(
        late.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{late}"
    );
    assert!(late.ends_with("ok"), "{late}");
    let status = exited(&mut child).await;
    assert!(status.success(), "{status:?}");
    stop.cancel();
}
