//! The `kube-sim` binary: announces its address only when serving, writes a private
//! kubeconfig, refuses bad arguments with exit code 2, and on SIGTERM ends every process
//! its pods started.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{LogParams, PostParams};
use serde_json::json;

use crate::harness::{self, eventually};

/// A kube-sim child process, killed if the test fails midway.
pub struct SimProcess {
    pub child: Child,
    pub addr: String,
    pub kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_sim(extra: &[&str]) -> SimProcess {
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = dir.path().join("kc.yaml");
    let b = rand::random_range(64u8..128);
    let c = rand::random_range(0u8..=255);
    let cidr = format!("127.{b}.{c}.0/24");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .args(["--pod-cidr", &cidr])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kube-sim");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("address line");
    let addr = line.trim().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "kube-sim printed {line:?}");
    SimProcess {
        child,
        addr,
        kubeconfig,
        _dir: dir,
    }
}

pub async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    harness::init();
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::from_yaml(&text).expect("parse kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test]
async fn sigterm_stops_the_simulator_and_every_pod_process() {
    let mut sim = start_sim(&[]);
    // The address is printed only once connections are accepted.
    std::net::TcpStream::connect(&sim.addr).expect("serving when announced");
    let mode = std::fs::metadata(&sim.kubeconfig)
        .expect("kubeconfig")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds the token");
    let pods: Api<Pod> = Api::namespaced(client_for(&sim.kubeconfig).await, "default");
    let pod = harness::pod_from(
        json!({"metadata": {"name": "sleeper"}, "spec": {"containers": [{"name": "s", "image": "local", "command": ["sh", "-c", "echo pid $$; exec sleep 600"]}]}}),
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let pid: i32 = eventually(10, "the process to report its pid", || async {
        let logs = pods.logs("sleeper", &LogParams::default()).await.ok()?;
        logs.trim().strip_prefix("pid ")?.parse().ok()
    })
    .await;
    assert!(pid_alive(pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sim.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("sigterm");
    let status = tokio::task::spawn_blocking(move || {
        let s = sim.child.wait();
        (s, sim)
    })
    .await
    .expect("join");
    assert!(
        status.0.expect("exit status").success(),
        "clean exit on SIGTERM"
    );
    eventually(5, "the pod process to end", || async {
        (!pid_alive(pid)).then_some(())
    })
    .await;
}

#[test]
fn bad_arguments_exit_with_code_2_and_say_why() {
    for (args, needle) in [
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--kubeconfig-out",
                "/tmp/x",
                "--deny",
                "fly:pods",
            ],
            "unknown verb",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--kubeconfig-out",
                "/tmp/x",
                "--pod-cidr",
                "10.0.0.0/16",
            ],
            "inside 127.0.0.0/8",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--kubeconfig-out",
                "/tmp/x",
                "--error-rate",
                "3",
            ],
            "errorRate",
        ),
        (vec!["--listen", "127.0.0.1:0"], "--kubeconfig-out"),
        (
            vec!["--listen", "nowhere", "--kubeconfig-out", "/tmp/x"],
            "invalid socket address",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
            .args(&args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["--listen", "10.1.2.3:0", "--kubeconfig-out", "/tmp/x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[tokio::test]
async fn tls_only_refuses_plain_http_and_plain_kubeconfigs_work() {
    let sim = start_sim(&["--tls"]);
    let client = client_for(&sim.kubeconfig).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    assert!(
        pods.list(&Default::default()).await.is_ok(),
        "HTTPS with the generated CA"
    );
    let plain = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&sim.addr)
            .await
            .expect("connect");
        s.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("closed in time");
    assert!(plain.is_empty(), "plain HTTP gets no answer under --tls");
    drop(sim);

    let sim = start_sim(&["--plain-http-kubeconfig"]);
    let text = std::fs::read_to_string(&sim.kubeconfig).expect("kubeconfig");
    assert!(text.contains("server: \"http://127.0.0.1:"), "{text}");
    let pods: Api<Pod> = Api::namespaced(client_for(&sim.kubeconfig).await, "default");
    assert!(
        pods.list(&Default::default()).await.is_ok(),
        "kube-rs sends its token over plain HTTP"
    );
}
