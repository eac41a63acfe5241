//! Zero-downtime binary upgrade with Pingora's listener hand-off, as an operator does
//! it: start the new gateway with `--upgrade`, send the old one SIGQUIT. Under a steady
//! stream of requests no connection is refused, none is closed unanswered and no error
//! is answered; the old process exits; the new one serves.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube_sim::kubelet::app::{self, AppIdentity};
use shared::ids::WorkspaceId;
use shared::route::{Route, RouteState};
use shared::table::Change;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use gateway::testkit::free_port;

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gateway(
    listen: u16,
    admin: u16,
    control: &std::path::Path,
    upgrade_sock: &std::path::Path,
    upgrade: bool,
    log: &std::path::Path,
) -> Gateway {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nocrd9-gateway"));
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
    ])
    .arg("--control-socket")
    .arg(control)
    .arg("--upgrade-sock")
    .arg(upgrade_sock)
    .args(["--grace-period-secs", "2", "--threads", "1"])
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(log).unwrap_or_else(|e| panic!("{e}")));
    if upgrade {
        cmd.arg("--upgrade");
    }
    Gateway(cmd.spawn().unwrap_or_else(|e| panic!("{e}")))
}

/// One request on its own connection: the status, or why there is none.
async fn request(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await {
        Ok(Ok(_)) => String::from_utf8_lossy(&out)
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line in {} bytes", out.len())),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Err(_) => Err("no answer in 10 s".into()),
    }
}

async fn status(addr: SocketAddr, path: &str) -> u16 {
    request(addr, path).await.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_refuses_no_connection_and_answers_no_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let control_sock = dir.path().join("control.sock");
    let upgrade_sock = dir.path().join("upgrade.sock");
    let (publisher, stop) = control::testkit::route_feed(&control_sock, 1);
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let up_addr = upstream.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(app::serve(
        upstream,
        Arc::new(AppIdentity {
            pod: "ws-up".into(),
            namespace: "default".into(),
        }),
        stop.clone(),
    ));
    publisher.update(vec![Change::Upsert {
        route: Route {
            workspace_id: WorkspaceId::parse("up").unwrap_or_else(|e| panic!("{e}")),
            pod_uid: "uid-up".into(),
            namespace: "default".into(),
            state: RouteState::Ready,
            addr: Some(up_addr),
            owner_sub: None,
            port_is_default: false,
            web: Default::default(),
        },
    }]);

    let (port, admin) = (free_port(), free_port());
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let old = gateway(
        port,
        admin,
        &control_sock,
        &upgrade_sock,
        false,
        &dir.path().join("old.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(addr, "/route/up/").await != 200 {
        assert!(Instant::now() < deadline, "the old gateway never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Steady load: one request after another, each on a fresh connection.
    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Connections closed with no answer at all (counted apart from error answers and
    // refused connections, to tell the causes apart).
    let unanswered = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (running, ok, failed) = (running.clone(), ok.clone(), failed.clone());
        let unanswered = unanswered.clone();
        load.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                match request(addr, "/route/up/load").await {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) if e == "no status line in 0 bytes" => {
                        eprintln!("closed unanswered");
                        unanswered.fetch_add(1, Ordering::Relaxed)
                    }
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let flowing = |n: u64| {
        let ok = ok.clone();
        async move {
            let from = ok.load(Ordering::Relaxed);
            shared::testkit::eventually(
                &format!("{n} more requests served"),
                Duration::from_secs(20),
                || ok.load(Ordering::Relaxed) >= from + n,
            )
            .await
        }
    };
    flowing(20).await;

    // The upgrade: the new process waits for the listener, the old one hands it over.
    let new = gateway(
        port,
        admin,
        &control_sock,
        &upgrade_sock,
        true,
        &dir.path().join("new.log"),
    );
    // The new process listens on the upgrade socket once it is ready to take the listener.
    shared::testkit::eventually(
        "the new gateway to wait on the upgrade socket",
        Duration::from_secs(20),
        || upgrade_sock.exists(),
    )
    .await;
    let old_pid = nix::unistd::Pid::from_raw(old.0.id() as i32);
    nix::sys::signal::kill(old_pid, nix::sys::signal::Signal::SIGQUIT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut old = old;
    let exit_deadline = Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Ok(Some(status)) = old.0.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < exit_deadline,
            "the old gateway did not exit after SIGQUIT"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    flowing(20).await;
    running.store(false, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let unanswered = unanswered.load(Ordering::Relaxed);
    // Pingora's old process closed a connection it had accepted just before its
    // graceful shutdown when the request had not arrived yet (about once in 7,000
    // requests in CI); vendor/pingora-proxy patch 4 answers it (`gateway::process`
    // checks that case deterministically).
    assert_eq!(unanswered, 0, "connections closed unanswered ({ok} ok)");
    let logs = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert_eq!(
        failed,
        0,
        "no error answer and no refused connection ({ok} ok); old gateway log:\n{}\nnew gateway log:\n{}",
        logs("old.log"),
        logs("new.log")
    );
    assert!(ok > 50, "{ok} requests in the window");
    assert!(exited.success(), "{exited:?}");
    assert_eq!(
        status(addr, "/route/up/after").await,
        200,
        "the new gateway serves"
    );
    assert_eq!(status(([127, 0, 0, 1], admin).into(), "/readyz").await, 200);
    drop(new);
    stop.cancel();
}
