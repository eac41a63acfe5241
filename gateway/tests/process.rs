//! The gateway binary as operators run it: SIGTERM lets in-flight requests finish within
//! the grace period while refusing new connections, and the access log has one JSON line
//! per request with the workspace, status and error code — and never a token or cookie.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control::publish::Publisher;
use shared::ids::WorkspaceId;
use shared::route::{Route, RouteState};
use shared::table::Change;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_the_access_log_never_holds_a_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("control.sock");
    let publisher = Publisher::new(1);
    let listener = Publisher::bind(&socket).unwrap_or_else(|e| panic!("{e}"));
    let stop = CancellationToken::new();
    tokio::spawn({
        let (p, s) = (publisher.clone(), stop.clone());
        async move { p.serve(listener, s).await }
    });
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let up = upstream(arrived.clone(), release.clone()).await;
    publisher.update(vec![Change::Upsert {
        route: Route {
            workspace_id: WorkspaceId::parse("logged").unwrap_or_else(|e| panic!("{e}")),
            pod_uid: "uid-logged".into(),
            namespace: "default".into(),
            state: RouteState::Ready,
            addr: Some(up),
            owner_sub: Some("alice".into()),
            port_is_default: false,
            web: Default::default(),
        },
    }]);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log_path = dir.path().join("gateway.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nocrd9-gateway"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .arg("--control-socket")
        .arg(&socket)
        .arg("--upgrade-sock")
        .arg(dir.path().join("upgrade.sock"))
        .args([
            "--grace-period-secs",
            "5",
            "--threads",
            "1",
            "--exit-with-parent",
        ])
        .env("AUTH_ENABLED", "true")
        .env("JWT_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("{e}")))
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
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .unwrap_or_else(|e| panic!("{e}"));
    shared::testkit::eventually_async(
        "the listener to close after SIGTERM",
        Duration::from_secs(10),
        || async { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
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
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "exited within the grace period"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
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
