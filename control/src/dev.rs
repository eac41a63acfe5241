//! `nocrd9 dev`: the whole system on one machine, for trying it out. An in-process
//! simulated cluster (kube-sim), the control plane, and `nocrd9-gateway` as a child
//! process linked by the route socket; the brief's example template is seeded and a demo
//! workspace spawned, so the printed curl works at once. Ctrl-C (or SIGTERM) stops
//! everything, the gateway and every process the simulated pods started included.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use kube_sim::{Sim, SimConfig};
use serde_json::json;

use crate::config::{ControlConfig, DevArgs};
use crate::run::Control;
use crate::workspaces::{self, SpawnRequest};

pub const DEMO_TEMPLATE: &str = "node-workspace-template";
pub const DEMO_WORKSPACE: &str = "demo";

/// The brief's example template, verbatim (kube-sim simulates its init and pre-stop
/// images and stands in for `node:20-alpine` with its built-in workspace app).
pub fn demo_template() -> ConfigMap {
    let spec = json!({
        "containers": [{
            "name": "workspace", "image": "node:20-alpine", "command": ["sleep", "infinity"],
            "volumeMounts": [{"name": "workspace-storage", "mountPath": "/workspace"}]
        }],
        "volumes": [{"name": "workspace-storage", "emptyDir": {}}]
    });
    let cm = json!({
        "metadata": {
            "name": DEMO_TEMPLATE,
            "labels": {"nogoo9/pod-template": "true"},
            "annotations": {
                "nogoo9/description": "A standard Node.js development sandbox with S3 storage sync",
                "nogoo9/tag": "node-20",
                "nogoo9/required-context": "PROJECT_NAME,REPO_URL",
                "nogoo9/iam-role-arn": "arn:aws:iam::123456789012:role/workspace-s3-access",
                "nogoo9/init-image": "alpine/git",
                "nogoo9/init-command": "git clone -- \"$REPO_URL\" \"/workspace/$PROJECT_NAME\"",
                "nogoo9/pre-stop-command": "aws s3 sync /workspace \"s3://my-workspace-backups/$NOGOO9_OWNER/$PROJECT_NAME\"",
                "nogoo9/default-grace-period": "120"
            }
        },
        "data": {"spec": spec.to_string()}
    });
    serde_json::from_value(cm).unwrap_or_default()
}

/// The identity the dev token is for (and the demo workspace's owner).
pub const DEV_USER: &str = "dev";
const DEV_TOKEN_TTL_SECS: u64 = 24 * 3600;
/// Host routing's domain in dev: `<id>.localhost` resolves to loopback (RFC 6761).
pub const DEV_DOMAIN: &str = "localhost";

/// A new file only its owner can read or write.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// 32 random bytes, hex: a fresh HS256 secret for this run.
fn random_secret() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A loopback port free now and not in `taken`: a port bound and released here can come
/// back from the next port-0 bind, and two listeners on one port would share its traffic.
fn free_port(taken: &[u16]) -> anyhow::Result<u16> {
    for _ in 0..16 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port apart from {taken:?}")
}

/// `nocrd9-gateway` next to this binary, or `NOCRD9_GATEWAY_BIN`.
fn gateway_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("NOCRD9_GATEWAY_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating nocrd9")?;
    let candidate = exe.with_file_name("nocrd9-gateway");
    if candidate.exists() {
        return Ok(candidate);
    }
    bail!(
        "nocrd9-gateway was not found next to {} (build the workspace: cargo build --workspace, or set NOCRD9_GATEWAY_BIN)",
        exe.display()
    )
}

pub async fn run(dev: DevArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("nocrd9-dev-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("creating the dev directory")?;
    // Only this user reads the kubeconfig (the simulated cluster's admin) and the logs.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    let sim = Sim::start(SimConfig::for_tests())
        .await
        .context("starting the simulated cluster")?;
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    private_file(&kubeconfig)?.write_all(sim.kubeconfig().as_bytes())?;
    let client = sim.client().await?;
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &demo_template())
        .await
        .context("seeding the example template")?;

    let gateway_port = if dev.gateway_port == 0 {
        free_port(&[])?
    } else {
        dev.gateway_port
    };
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    // Auth is on, with a secret made for this run and a token for the dev user.
    let secret = match &dev.jwt_secret {
        Some(s) => s.clone(),
        None => random_secret()?,
    };
    let token = shared::auth::mint::hs256(
        secret.as_bytes(),
        &shared::auth::mint::claims_for(DEV_USER, DEV_TOKEN_TTL_SECS),
    )
    .context("minting the dev token")?;
    let dev_user = crate::caller::Caller::Verified {
        identity: shared::auth::Identity::user(DEV_USER, u64::MAX),
        role: crate::caller::Role::Admin,
    };
    let socket = dir.path().join("control.sock");
    let mut config = ControlConfig::local("default", socket.clone());
    config.listen = SocketAddr::from(([127, 0, 0, 1], dev.port));
    config.gateway_url = Some(gateway_url.clone());
    // Host routing under `localhost`: browsers and curl resolve `*.localhost` to this
    // machine, so every workspace is its own origin here too.
    config.workspace_domain = Some(DEV_DOMAIN.to_string());
    config.auth = shared::auth::AuthArgs::hs256(&secret)
        .build()
        .map_err(|problems| anyhow::anyhow!(problems.join("; ")))?;
    // The dev user administers this local system; every other token is a user's.
    config.admin_subjects = [DEV_USER.to_string()].into();
    let control = Control::start(&config, client).await?;
    let mcp_addr = control
        .http_addr
        .context("the control plane has no HTTP address")?;

    let gateway_log = dir.path().join("gateway.log");
    let mut gateway = tokio::process::Command::new(gateway_binary()?)
        .args([
            "--listen",
            &format!("127.0.0.1:{gateway_port}"),
            "--admin-listen",
            &format!("127.0.0.1:{}", free_port(&[gateway_port])?),
            "--gateway-id",
            "dev",
            "--workspace-domain",
            DEV_DOMAIN,
            // Never outlive this process, however it ends.
            "--exit-with-parent",
        ])
        .arg("--control-socket")
        .arg(&socket)
        .env("AUTH_ENABLED", "true")
        .env("JWT_SECRET", &secret)
        .stdout(Stdio::null())
        .stderr(private_file(&gateway_log)?)
        .kill_on_drop(true)
        .spawn()
        .context("starting nocrd9-gateway")?;
    let gateway_pid = gateway.id().unwrap_or_default();
    let connected = tokio::time::timeout(Duration::from_secs(30), async {
        while control.publisher.gateways().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if connected.is_err() {
        bail!(
            "nocrd9-gateway did not connect within 30 s; see {}",
            gateway_log.display()
        );
    }
    let context: BTreeMap<String, String> = [
        ("PROJECT_NAME", DEMO_WORKSPACE),
        ("REPO_URL", "https://example.com/demo.git"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    let spawned = workspaces::spawn(
        &control.ctx,
        SpawnRequest {
            id: DEMO_WORKSPACE.into(),
            namespace: None,
            template_ref: Some(DEMO_TEMPLATE.into()),
            spec: None,
            annotations: BTreeMap::new(),
            context,
            wait: true,
            wait_timeout: Duration::from_secs(60),
        },
        &dev_user,
        &crate::progress::Progress::none(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("spawning the demo workspace: {}", e.message))?;
    let url = spawned.structured["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    println!("nocrd9 dev is running (Ctrl-C stops everything)");
    println!(
        "  simulated cluster: {}  (KUBECONFIG={} kubectl get pods -A)",
        sim.url(),
        kubeconfig.display()
    );
    println!("  MCP endpoint:      http://{mcp_addr}/mcp");
    println!("  web UI:            http://{mcp_addr}/ui?token={token}");
    println!(
        "  gateway:           {gateway_url}  (pid {gateway_pid}, log {})",
        gateway_log.display()
    );
    println!("  template:          {DEMO_TEMPLATE} (context: PROJECT_NAME, REPO_URL)");
    println!(
        "  demo workspace:    {url}  (its own origin; by path: {gateway_url}/route/{DEMO_WORKSPACE}/)"
    );
    let secret_source = if dev.jwt_secret.is_some() {
        "the secret from --jwt-secret"
    } else {
        "a new secret each run"
    };
    println!(
        "  auth:              on; user {DEV_USER:?} (an administrator), token valid 24 h ({secret_source}):"
    );
    println!("  token:             {token}");
    println!(
        "  note:              pods with image `local` run as processes on this host, as you; only administrators may create them"
    );
    println!(
        "  files:             {} (mode 0700: kubeconfig, gateway log)",
        dir.path().display()
    );
    println!("try:");
    println!("  curl -H 'Authorization: Bearer {token}' {url}hello");
    let _ = std::io::stdout().flush();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        status = gateway.wait() => tracing::error!(?status, log = %gateway_log.display(), "nocrd9-gateway exited"),
    }
    if let Some(pid) = gateway.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = tokio::time::timeout(Duration::from_secs(10), gateway.wait()).await;
    }
    let _ = gateway.kill().await;
    control.stop().await;
    sim.shutdown().await;
    Ok(())
}
