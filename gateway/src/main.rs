//! `nocrd9-gateway`: parse flags, set up logging, build and run the gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "nocrd9-gateway",
    version,
    about = "The no-crd data plane: routes /route/<workspace-id>/… to workspace pods"
)]
struct Args {
    /// Address the proxy listens on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Address of /healthz, /readyz and /metrics (a port other than --listen's).
    #[arg(long, env = "GATEWAY_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// The control plane's Unix socket (routes come from there).
    #[arg(
        long,
        env = "CONTROL_SOCKET",
        default_value = "/run/nocrd9/control.sock"
    )]
    control_socket: PathBuf,
    /// This gateway's name in control's view (default: hostname and PID).
    #[arg(long, env = "GATEWAY_ID")]
    gateway_id: Option<String>,
    /// Proxy worker threads.
    #[arg(long, env = "GATEWAY_THREADS", default_value_t = 2)]
    threads: usize,
    /// Seconds in-flight requests may finish after SIGTERM.
    #[arg(long, env = "GATEWAY_GRACE_PERIOD", default_value_t = 10)]
    grace_period_secs: u64,
    /// PEM certificate chain: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN). Needs --tls-key.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Pass the caller's token on to workspaces (by default it is removed: header,
    /// `token` query parameter and cookie).
    #[arg(long, env = "FORWARD_AUTH")]
    forward_auth: bool,
    /// Port of workspaces whose pod names none (`nogoo9/workspace-port`).
    #[arg(long, env = "DEFAULT_WORKSPACE_PORT", default_value_t = 3000, value_parser = clap::value_parser!(u16).range(1..))]
    default_workspace_port: u16,
    /// Largest request line plus headers, in bytes (431 above).
    #[arg(long, env = "GATEWAY_MAX_HEADER_BYTES", default_value_t = 32 * 1024)]
    max_header_bytes: usize,
    /// Seconds for an upstream to accept, read or write on an ordinary request (504 after).
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    upstream_timeout_secs: u64,
    /// Seconds a client may stall while sending a request.
    #[arg(long, env = "GATEWAY_DOWNSTREAM_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    downstream_timeout_secs: u64,
    /// Seconds a WebSocket (no byte either way) or an event stream may sit idle before it
    /// is closed.
    #[arg(long, env = "GATEWAY_UPGRADED_IDLE_TIMEOUT", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    upgraded_idle_timeout_secs: u64,
    /// How long the owner's request to a suspended workspace (with
    /// `nogoo9/wake-on-request`) waits for it to wake, e.g. `30s`; 503 with `Retry-After`
    /// after it.
    #[arg(long, env = "GATEWAY_WAKE_TIMEOUT", default_value = "30s", value_parser = shared::duration::parse)]
    wake_timeout: std::time::Duration,
    /// Concurrent requests and WebSockets per workspace (503 above).
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS_PER_WORKSPACE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_workspace: u32,
    /// Zero-downtime upgrade: take the listening socket over from the gateway running
    /// with the same --upgrade-sock (start this one, then send the old one SIGQUIT).
    #[arg(long, env = "GATEWAY_UPGRADE")]
    upgrade: bool,
    /// Unix socket the old gateway hands its listener over on during an upgrade.
    #[arg(
        long,
        env = "GATEWAY_UPGRADE_SOCK",
        default_value = "/tmp/nocrd9-gateway-upgrade.sock"
    )]
    upgrade_sock: PathBuf,
    /// Idle upstream connections kept for reuse across all workspaces (default: one for
    /// each of 100,000 workspaces). Capped at 3/4 of the open-file limit, which the
    /// gateway raises to its hard limit at start.
    #[arg(long, env = "GATEWAY_UPSTREAM_POOL_SIZE", default_value_t = gateway::limits::DEFAULT_UPSTREAM_POOL_SIZE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    upstream_pool_size: u64,
    /// Host routing: `<id>.DOMAIN` reaches workspace `<id>` (path untouched) and
    /// `<port>-<id>.DOMAIN` that container port of it — each workspace its own browser
    /// origin. Point a wildcard DNS record (and certificate) for `*.DOMAIN` here.
    #[arg(long, env = "WORKSPACE_DOMAIN")]
    workspace_domain: Option<String>,
    /// Path routing (`/route/<id>/`); `--path-routing false` leaves host routing only.
    #[arg(long, env = "PATH_ROUTING", default_value_t = true, action = clap::ArgAction::Set)]
    path_routing: bool,
    /// Stop (as on SIGINT) when the process that started this one goes away: for a
    /// gateway run as another program's child (`nocrd9 dev`), so it never outlives it.
    #[arg(long, env = "GATEWAY_EXIT_WITH_PARENT")]
    exit_with_parent: bool,
    /// Append one JSON line per proxied session here (`-` for stderr; created 0600):
    /// subject, workspace, start, end, status, bytes each way, HTTP or WebSocket.
    #[arg(long, env = "AUDIT_LOG")]
    audit_log: Option<String>,
    #[command(flatten)]
    auth: shared::auth::AuthArgs,
}

/// Watches for this process being re-parented (its parent exited) and then asks for a
/// fast shutdown, the way Ctrl-C would.
/// Whether two listen addresses would bind one port (port 0 picks a fresh one each time).
fn listeners_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    let _ = std::thread::Builder::new()
        .name("exit-with-parent".into())
        .spawn(move || {
            while std::os::unix::process::parent_id() == parent {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            tracing::warn!(parent, "the parent process is gone; stopping");
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGINT);
        });
}

/// mimalloc: the proxy allocates small, short-lived buffers per request, where glibc's
/// malloc showed up at ~13% of the gateway's CPU in a profile under load. The
/// `system-allocator` feature leaves it out, so heap profilers that watch `malloc` (DHAT,
/// heaptrack) see every allocation (`loadtest/harness/instructions.py --allocations`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
#[cfg(not(feature = "system-allocator"))]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Raises the soft open-file limit to the hard one (every client and every pooled
/// upstream connection is a file descriptor); returns the limit now in force.
fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
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
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if tracing::enabled!(target: "access", tracing::Level::INFO) {
        gateway::access_log::enable();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.threads == 0 {
        eprintln!("nocrd9-gateway: --threads must be at least 1");
        return ExitCode::from(2);
    }
    let domain = match args
        .workspace_domain
        .as_deref()
        .map(shared::ids::workspace_domain)
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprintln!("nocrd9-gateway: --workspace-domain: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.path_routing && domain.is_none() {
        eprintln!(
            "nocrd9-gateway: --path-routing false needs --workspace-domain (nothing would be routed)"
        );
        return ExitCode::from(2);
    }
    let auth = match args.auth.build() {
        Ok(a) => a,
        Err(problems) => {
            for p in problems {
                eprintln!("nocrd9-gateway: {p}");
            }
            return ExitCode::from(2);
        }
    };
    // Pingora retries a busy port for a long time and the admin listener binds late:
    // fail fast, with the reason, when either address cannot be bound now (in an
    // upgrade both are still held by the old gateway, which hands the listener over).
    let to_check = if args.upgrade {
        Vec::new()
    } else {
        vec![
            ("--listen", args.listen),
            ("--admin-listen", args.admin_listen),
        ]
    };
    // The admin listener binds with SO_REUSEPORT (for upgrades), so on the proxy's own
    // port it could take a share of the proxy's connections instead of failing.
    if listeners_overlap(args.listen, args.admin_listen) {
        eprintln!(
            "nocrd9-gateway: --admin-listen {} uses the same port as --listen {}",
            args.admin_listen, args.listen
        );
        return ExitCode::from(2);
    }
    for (what, addr) in to_check {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            eprintln!("nocrd9-gateway: cannot bind {what} {addr}: {e}");
            return ExitCode::from(2);
        }
    }
    if args.exit_with_parent {
        exit_with_parent();
    }
    let open_files = raise_open_file_limit();
    let mut upstream_pool_size = args.upstream_pool_size as usize;
    if let Some(capped) = gateway::limits::affordable_pool_size(upstream_pool_size, open_files) {
        tracing::warn!(
            requested = upstream_pool_size,
            capped,
            open_file_limit = open_files,
            "the upstream pool is capped: each idle upstream connection holds a file descriptor"
        );
        upstream_pool_size = capped;
    }
    let audit = match args.audit_log.as_deref().map(shared::audit::AuditLog::open) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            eprintln!("nocrd9-gateway: --audit-log: {e}");
            return ExitCode::from(2);
        }
    };
    let gateway_id = args.gateway_id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "gateway".into());
        format!("{host}-{}", std::process::id())
    });
    let config = gateway::GatewayConfig {
        listen: args.listen,
        admin_listen: args.admin_listen,
        control_socket: args.control_socket,
        gateway_id,
        threads: args.threads,
        grace_period_secs: args.grace_period_secs,
        auth,
        forward_auth: args.forward_auth,
        default_workspace_port: args.default_workspace_port,
        activity_every: gateway::sync::ACTIVITY_EVERY,
        upgrade: args.upgrade,
        upgrade_sock: args.upgrade_sock,
        routing: gateway::routing::Routing {
            domain,
            path: args.path_routing,
        },
        audit,
        limits: gateway::limits::Limits {
            max_header_bytes: args.max_header_bytes,
            upstream_timeout: std::time::Duration::from_secs(args.upstream_timeout_secs),
            downstream_timeout: std::time::Duration::from_secs(args.downstream_timeout_secs),
            upgraded_idle_timeout: std::time::Duration::from_secs(args.upgraded_idle_timeout_secs),
            max_connections_per_workspace: args.max_connections_per_workspace,
            upstream_pool_size,
            wake_timeout: args.wake_timeout,
        },
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| gateway::TlsFiles { cert, key }),
    };
    match gateway::build(&config) {
        Ok(gw) => gw.run_forever(),
        Err(e) => {
            eprintln!("nocrd9-gateway: {e}");
            ExitCode::from(2)
        }
    }
}
