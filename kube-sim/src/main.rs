//! `kube-sim`: run the simulated Kubernetes cluster as a process.
//!
//! Writes the kubeconfig, then prints the bound address on stdout once it accepts
//! connections; stops on SIGTERM or Ctrl-C, ending every process its pods started.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kube_sim::{DenyRule, Faults, PodCidr, Sim, SimConfig, SimError};

#[derive(Debug, Parser)]
#[command(
    name = "kube-sim",
    version,
    about = "A simulated Kubernetes API server and kubelet on loopback, for tests and load tests"
)]
struct Args {
    /// Address to listen on (loopback only); port 0 picks a free port.
    #[arg(long, env = "KUBE_SIM_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig (server URL, token, CA).
    #[arg(long, env = "KUBE_SIM_KUBECONFIG_OUT")]
    kubeconfig_out: PathBuf,
    /// Serve HTTPS only. Without it the port answers both HTTPS (the kubeconfig names
    /// https:// with a CA generated for this run, since kubectl sends credentials only
    /// over TLS) and plain HTTP (`--plain-http-kubeconfig` writes a kubeconfig for that).
    #[arg(long, env = "KUBE_SIM_TLS")]
    tls: bool,
    /// Write an http:// kubeconfig (for clients that send tokens over plain HTTP, such as
    /// kube-rs and the Python client; kubectl does not).
    #[arg(long, conflicts_with = "tls")]
    plain_http_kubeconfig: bool,
    /// Loopback range pod IPs are taken from.
    #[arg(long, env = "KUBE_SIM_POD_CIDR", default_value = "127.10.0.0/16")]
    pod_cidr: PodCidr,
    /// Hand a freed pod IP out again first (for IP-reuse tests).
    #[arg(long, env = "KUBE_SIM_REUSE_IPS")]
    reuse_ips: bool,
    /// Pods get IPs and become Ready, but nothing is started for them (an external
    /// origin bound to 0.0.0.0 answers for every pod IP).
    #[arg(long, env = "KUBE_SIM_EXTERNAL_WORKLOADS")]
    external_workloads: bool,
    /// Deny requests: VERB:RESOURCE[/SUBRESOURCE][@NAMESPACE] (repeatable; `*` matches any
    /// verb or resource). SelfSubjectAccessReview answers accordingly.
    #[arg(long, value_name = "RULE")]
    deny: Vec<DenyRule>,
    /// Bearer token clients must present (random when unset).
    #[arg(long, env = "KUBE_SIM_TOKEN")]
    token: Option<String>,
    /// Events kept per resource kind for resuming watches (older resumes get 410).
    #[arg(long, env = "KUBE_SIM_HISTORY", default_value_t = 20_000)]
    history: usize,
    /// Seconds between watch bookmarks (when the client allows them).
    #[arg(long, env = "KUBE_SIM_BOOKMARK_INTERVAL", default_value_t = 60)]
    bookmark_interval_secs: u64,
    /// Directory for pod working directories and emptyDir volumes (temporary when unset).
    #[arg(long, env = "KUBE_SIM_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Fault: added latency per API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fault: fraction (0..1) of API requests answered with an injected error.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Fault: codes injected errors use (429, 500, 503; comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    error_codes: Vec<u16>,
    /// Fault: close every watch stream after this many seconds.
    #[arg(long, default_value_t = 0)]
    watch_close_after_secs: u64,
    /// Fault: answer every resumed watch with 410 Expired.
    #[arg(long)]
    expire_resumed_watches: bool,
    /// Fault: delay before a new pod starts, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pod_start_delay_ms: u64,
    /// Fault: pods run but never become Ready.
    #[arg(long)]
    pods_never_ready: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    raise_fd_limit();
    let faults = Faults {
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        error_codes: args.error_codes.clone(),
        watch_close_after_secs: args.watch_close_after_secs,
        expire_resumed_watches: args.expire_resumed_watches,
        pod_start_delay_ms: args.pod_start_delay_ms,
        pods_never_ready: args.pods_never_ready,
    };
    if let Err(e) = faults.validate() {
        eprintln!("kube-sim: {e}");
        return ExitCode::from(2);
    }
    let config = SimConfig {
        listen: args.listen,
        tls_only: args.tls,
        pod_cidr: args.pod_cidr,
        reuse_ips: args.reuse_ips,
        external_workloads: args.external_workloads,
        deny: args.deny,
        faults,
        history: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_interval_secs.max(1)),
        token: args.token,
        state_dir: args.state_dir,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kube-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, args.kubeconfig_out, args.plain_http_kubeconfig))
}

async fn run(config: SimConfig, kubeconfig_out: PathBuf, plain: bool) -> ExitCode {
    let sim = match Sim::start(config).await {
        Ok(s) => s,
        Err(e @ (SimError::NotLoopback(_) | SimError::Faults(_))) => {
            eprintln!("kube-sim: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("kube-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kubeconfig = if plain {
        sim.kubeconfig_plain()
    } else {
        sim.kubeconfig()
    };
    if let Err(e) = write_private(&kubeconfig_out, &kubeconfig) {
        eprintln!(
            "kube-sim: writing the kubeconfig to {}: {e}",
            kubeconfig_out.display()
        );
        sim.shutdown().await;
        return ExitCode::FAILURE;
    }
    // The listener is bound and serving: announce the address (and only then).
    println!("{}", sim.addr());
    tracing::info!(url = sim.url(), kubeconfig = %kubeconfig_out.display(), "kube-sim is serving");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube-sim: cannot listen for SIGTERM: {e}");
            sim.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping: ending every pod process");
    sim.shutdown().await;
    ExitCode::SUCCESS
}

/// The kubeconfig holds the token: create it readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Pods hold listeners and connections: use the whole hard limit of open files.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
