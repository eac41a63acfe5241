//! Starting a gateway on its own thread (Pingora runs its own runtimes) and talking to it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use gateway::{GatewayConfig, build};
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct StopSignal(Mutex<Option<tokio::sync::oneshot::Receiver<()>>>);

#[async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            let _ = rx.await;
        }
        ShutdownSignal::FastShutdown
    }
}

/// Pingora cannot bind port 0 and report it, so a free port is reserved and released.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a test gateway runs with beyond the defaults.
#[derive(Default, Clone)]
pub struct Options {
    pub auth: Option<std::sync::Arc<shared::auth::Verifier>>,
    pub forward_auth: bool,
    pub tls: Option<gateway::TlsFiles>,
    pub limits: gateway::limits::Limits,
    pub default_workspace_port: Option<u16>,
}

impl TestGateway {
    pub async fn start(control_socket: &Path) -> TestGateway {
        Self::start_with(control_socket, Options::default()).await
    }

    pub async fn start_with(control_socket: &Path, opts: Options) -> TestGateway {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let config = GatewayConfig {
            listen: addr,
            admin_listen: admin,
            control_socket: control_socket.to_path_buf(),
            gateway_id: "gw-test".into(),
            threads: 1,
            grace_period_secs: 1,
            auth: opts.auth,
            forward_auth: opts.forward_auth,
            tls: opts.tls,
            limits: opts.limits,
            default_workspace_port: opts.default_workspace_port.unwrap_or(3000),
            activity_every: Duration::from_millis(200),
            upgrade: false,
            upgrade_sock: std::env::temp_dir()
                .join(format!("nocrd9-test-upgrade-{}.sock", addr.port())),
        };
        let gw = build(&config).unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || gw.run(Box::new(StopSignal(Mutex::new(Some(rx))))));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err()
            || tokio::net::TcpStream::connect(admin).await.is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        TestGateway {
            addr,
            admin,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: gw.test:8080\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
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
