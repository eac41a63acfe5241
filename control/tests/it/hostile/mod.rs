//! The hostile-input suite: an authenticated user (`mallory`) tries every way issue #12
//! found to act as someone else, against real processes — `nocrd9` replicas and a
//! `nocrd9-gateway` on loopback, on the simulated cluster — through MCP (streamable
//! HTTP, each user's own token) and through the gateway. Every refusal is checked to
//! have created or changed nothing.
//!
//! Black box on purpose: the binaries are configured by environment only, and
//! `HOSTILE_NOCRD9_BIN` / `HOSTILE_GATEWAY_BIN` point the suite at other builds (the
//! commit before the tenant-isolation work was run this way; see the note in
//! `SECURITY.md`).

mod audit;
mod dev;
mod gateway;
mod ids;
mod limits;
mod reach;
mod sessions;
mod specs;
mod templates;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::Api;
use kube::api::ListParams;
use kube_sim::{Sim, SimConfig};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use shared::testkit::free_port;

use crate::harness::{Client, call, client, text};

pub const SECRET: &str = "hostile-suite-secret-hostile-suite-secret";
/// The administrator (`ADMIN_SUBJECTS`).
pub const ROOT: &str = "root";

fn nocrd9_bin() -> PathBuf {
    std::env::var_os("HOSTILE_NOCRD9_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nocrd9")))
}

fn gateway_bin() -> PathBuf {
    std::env::var_os("HOSTILE_GATEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| nocrd9_bin().with_file_name("nocrd9-gateway"))
}

/// One `nocrd9` process.
pub struct ControlProc {
    _child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
    pub log: PathBuf,
}

impl ControlProc {
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

/// One `nocrd9-gateway` process.
pub struct GatewayProc {
    _child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
}

/// kube-sim, `replicas` controls (sharing the cluster, each with its own route socket),
/// and a gateway on the first control's socket.
pub struct System {
    pub sim: Sim,
    /// Holds the kubeconfig, the sockets and the logs.
    _dir: tempfile::TempDir,
    pub controls: Vec<ControlProc>,
    pub gateway: GatewayProc,
}

async fn wait_ok(url: &str, what: &str) {
    let http = reqwest::Client::new();
    shared::testkit::eventually_async(what, Duration::from_secs(60), || async {
        http.get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
}

/// Starts a server on a free port, and on another one if that port was taken between
/// picking and binding (any test's outgoing connection can take it): the server then
/// exits at once, and this tries again.
async fn start_listening(
    what: &str,
    mut command: impl FnMut(u16) -> tokio::process::Command,
) -> (tokio::process::Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = command(port)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return (child, port);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not listen within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    panic!("{what} could not bind a free port in 5 tries")
}

impl System {
    pub async fn start(replicas: usize) -> System {
        Self::start_with(replicas, &[], &[]).await
    }

    /// Started with extra environment for the controls and for the gateway.
    pub async fn start_with(
        replicas: usize,
        control_env: &[(&str, &str)],
        gateway_env: &[(&str, &str)],
    ) -> System {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sim = Sim::start(SimConfig::for_tests()).await.expect("kube-sim");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        std::fs::write(&kubeconfig, sim.kubeconfig()).expect("kubeconfig");
        // The gateway first (it dials control's socket until it is there), so controls
        // know its URL.
        let gateway_socket = dir.path().join("control-0.sock");
        let admin = std::cell::Cell::new(0);
        let (gateway, gateway_port) = start_listening("nocrd9-gateway", |port| {
            admin.set(free_port());
            let mut c = tokio::process::Command::new(gateway_bin());
            c.args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admin-listen",
                &format!("127.0.0.1:{}", admin.get()),
                "--gateway-id",
                "hostile",
            ])
            .arg("--control-socket")
            .arg(&gateway_socket)
            .env("AUTH_ENABLED", "true")
            .env("JWT_SECRET", SECRET)
            .envs(gateway_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            c
        })
        .await;
        let mut controls = Vec::new();
        for i in 0..replicas {
            let socket = dir.path().join(format!("control-{i}.sock"));
            let log = dir.path().join(format!("control-{i}.log"));
            let (child, port) = start_listening("nocrd9", |port| {
                let mut c = tokio::process::Command::new(nocrd9_bin());
                c.env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                    .env("KUBECONFIG", &kubeconfig)
                    .env("TRANSPORT", "http")
                    .env("HOST", "127.0.0.1")
                    .env("PORT", port.to_string())
                    .env("NAMESPACE", "default")
                    .env("GATEWAY_SOCKET", &socket)
                    .env("GATEWAY_URL", format!("http://127.0.0.1:{gateway_port}"))
                    .env("AUTH_ENABLED", "true")
                    .env("JWT_SECRET", SECRET)
                    .env("ADMIN_SUBJECTS", ROOT)
                    .env("LOG_LEVEL", "info")
                    .envs(control_env.iter().copied())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).expect("a log file"));
                c
            })
            .await;
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
            wait_ok(&format!("http://{addr}/readyz"), "nocrd9 to be ready").await;
            controls.push(ControlProc {
                _child: child,
                addr,
                log,
            });
        }
        wait_ok(
            &format!("http://127.0.0.1:{}/readyz", admin.get()),
            "the gateway to have its routes",
        )
        .await;
        System {
            sim,
            _dir: dir,
            controls,
            gateway: GatewayProc {
                _child: gateway,
                addr: ([127, 0, 0, 1], gateway_port).into(),
            },
        }
    }

    pub fn token(&self, sub: &str) -> String {
        crate::harness::token(SECRET, sub, 600)
    }

    /// An MCP session of `sub` on replica `replica`.
    pub async fn mcp(&self, replica: usize, sub: &str) -> Client {
        client(&self.controls[replica].url(), &self.token(sub)).await
    }

    pub async fn kube(&self) -> kube::Client {
        self.sim.client().await.expect("a client")
    }

    /// What replica `i` has logged so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.controls[i].log).unwrap_or_default()
    }

    /// Everything in the cluster a refused call must not have touched.
    pub async fn snapshot(&self) -> Snapshot {
        let kube = self.kube().await;
        let lp = ListParams::default();
        let pods = Api::<Pod>::all(kube.clone()).list(&lp).await.expect("pods");
        let cms = Api::<ConfigMap>::all(kube.clone())
            .list(&lp)
            .await
            .expect("config maps");
        let sas = Api::<ServiceAccount>::all(kube)
            .list(&lp)
            .await
            .expect("service accounts");
        let key = |ns: &Option<String>, name: &Option<String>, rv: &Option<String>| {
            format!(
                "{}/{}@{}",
                ns.as_deref().unwrap_or(""),
                name.as_deref().unwrap_or(""),
                rv.as_deref().unwrap_or("")
            )
        };
        let mut objects: Vec<String> = pods
            .items
            .iter()
            .map(|p| {
                format!(
                    "pod {}",
                    key(
                        &p.metadata.namespace,
                        &p.metadata.name,
                        &p.metadata.resource_version
                    )
                )
            })
            .chain(cms.items.iter().map(|c| {
                format!(
                    "configmap {}",
                    key(
                        &c.metadata.namespace,
                        &c.metadata.name,
                        &c.metadata.resource_version
                    )
                )
            }))
            .chain(sas.items.iter().map(|s| {
                format!(
                    "serviceaccount {}",
                    key(
                        &s.metadata.namespace,
                        &s.metadata.name,
                        &s.metadata.resource_version
                    )
                )
            }))
            .collect();
        objects.sort();
        Snapshot(objects)
    }

    /// A GET through the gateway: status, headers (lower-case names) and body.
    pub async fn gateway_get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        raw_get(self.gateway.addr, path, headers).await
    }
}

/// The cluster's objects (names and resourceVersions) at one moment.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot(Vec<String>);

/// Calls a tool and asserts it was refused, that the refusal says `words`, and that the
/// cluster is exactly as it was.
pub async fn refused(
    sys: &System,
    who: &Client,
    tool: &str,
    args: Value,
    words: &str,
) -> CallToolResult {
    let before = sys.snapshot().await;
    let r = call(who, tool, args.clone()).await;
    assert_eq!(
        r.is_error,
        Some(true),
        "{tool} {args} was not refused: {}",
        text(&r)
    );
    assert!(
        text(&r).contains(words),
        "{tool} {args}: expected {words:?} in {:?}",
        text(&r)
    );
    // Let the cluster settle (a refused call that did create something shows by now).
    let after = sys.snapshot().await;
    assert_eq!(before, after, "{tool} {args} changed the cluster");
    r
}

/// Calls a tool and asserts it was refused saying `words` (no cluster at hand to compare).
pub async fn refused_plain(who: &Client, tool: &str, args: Value, words: &str) {
    let r = call(who, tool, args.clone()).await;
    assert_eq!(
        r.is_error,
        Some(true),
        "{tool} {args} was not refused: {}",
        text(&r)
    );
    assert!(
        text(&r).contains(words),
        "{tool} {args}: expected {words:?} in {:?}",
        text(&r)
    );
}

/// Calls a tool and asserts it worked.
pub async fn ok(who: &Client, tool: &str, args: Value) -> Value {
    let r = call(who, tool, args.clone()).await;
    assert_ne!(r.is_error, Some(true), "{tool} {args}: {}", text(&r));
    r.structured_content.unwrap_or_default()
}

/// A minimal workspace spec a user may spawn.
pub fn spec() -> Value {
    json!({"containers": [{"name": "app", "image": "node:20-alpine"}]})
}

/// A whole HTTP/1.1 answer.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A raw GET with exactly these header lines (names as given, repeats kept).
pub async fn raw_get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: gw.test\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Reply {
        status,
        head: head.to_string(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
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

/// Waits until `sub`'s workspace `id` answers 200 through the gateway; returns the body.
pub async fn reachable(sys: &System, id: &str, sub: &str) -> Value {
    let bearer = format!("Bearer {}", sys.token(sub));
    let path = format!("/route/{id}/whoami");
    let body = std::sync::Mutex::new(Value::Null);
    shared::testkit::eventually_async(
        &format!("{id} to answer {sub} through the gateway"),
        Duration::from_secs(30),
        || async {
            let r = sys.gateway_get(&path, &[("authorization", &bearer)]).await;
            *body.lock().expect("lock") = r.json();
            r.status == 200
        },
    )
    .await;
    body.into_inner().expect("lock")
}

/// A file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}
