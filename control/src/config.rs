//! `nocrd9`'s flags and environment variables (the names of the original no-crd), and
//! the one validated configuration built from them: [`ControlConfig::from_args`] checks
//! every flag once and reports every problem at once; [`crate::run::Control::start`]
//! takes the result, and tests build a [`ControlConfig`] directly.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Stdio,
    Http,
    Both,
}

/// `cluster`: tools take a `namespace` argument; `namespaced`: everything is pinned to
/// `--namespace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Cluster,
    Namespaced,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cluster => "cluster",
            Mode::Namespaced => "namespaced",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run the whole system locally: a simulated cluster, the control plane and a
    /// gateway, with the brief's example template and a demo workspace.
    Dev(DevArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Port of the control plane (MCP at /mcp); 0 picks a free one.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Port of the gateway (workspaces at /route/<id>/); 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub gateway_port: u16,
    /// HS256 secret (at least 32 bytes) for this run's tokens, so tokens outlive a
    /// restart and other users' tokens can be minted; default: a new random one.
    #[arg(long, env = "NOCRD9_DEV_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "nocrd9",
    version,
    about = "The no-crd control plane: MCP server for workspace pods, and the route publisher for nocrd9-gateway"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// MCP transport.
    #[arg(
        short = 't',
        long,
        env = "TRANSPORT",
        value_enum,
        default_value = "http"
    )]
    pub transport: Transport,
    /// `cluster` lets tools choose a namespace; `namespaced` pins them to --namespace.
    #[arg(short = 'm', long, env = "MODE", value_enum, default_value = "cluster")]
    pub mode: Mode,
    /// Default namespace (the only one in namespaced mode).
    #[arg(short = 'n', long, env = "NAMESPACE", default_value = "nogoo9")]
    pub namespace: String,
    /// HTTP port (MCP at /mcp, /healthz, /readyz).
    #[arg(short = 'p', long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// HTTP bind address.
    #[arg(short = 'H', long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Log level (debug, info, warning, error, fatal; or a tracing filter); logs go to stderr.
    #[arg(short = 'l', long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log lines as JSON objects (the default; what log pipelines read) or plain text.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// The Unix socket gateways connect to for routes (created with mode 0600).
    #[arg(
        long,
        env = "GATEWAY_SOCKET",
        default_value = "/run/nocrd9/control.sock"
    )]
    pub gateway_socket: PathBuf,
    /// Public base URL of the gateway, used in workspace URLs (`<url>/route/<id>/`).
    #[arg(long, env = "GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Port of a workspace's app when its pod has no `nogoo9/workspace-port` annotation.
    #[arg(long, env = "DEFAULT_WORKSPACE_PORT", default_value_t = 3000)]
    pub default_workspace_port: u16,
    /// Skip the startup SelfSubjectAccessReview checks and register every tool.
    #[arg(long, env = "DISABLE_PERMISSION_CHECKS")]
    pub disable_permission_checks: bool,
    /// The Pod Security Standard every pod spec arriving through a tool must meet.
    #[arg(long, env = "POD_SECURITY", value_enum, default_value = "baseline")]
    pub pod_security: crate::pod_security::Level,
    /// Base URL of an OCI/Docker registry for `list_registry_images`.
    #[arg(long, env = "REGISTRY_URL")]
    pub registry_url: Option<String>,
    /// Register only the read tools; calls to write tools are refused.
    #[arg(long, env = "READ_ONLY")]
    pub read_only: bool,
    /// Serve the web UI at `/` and `/ui` and as the MCP resource `ui://nogoo9/app`.
    #[arg(long, env = "UI_ENABLED", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub ui_enabled: bool,
    /// Path prefix for every HTTP route (e.g. `/nocrd9`: MCP at `/nocrd9/mcp`).
    #[arg(long, env = "BASE_URL")]
    pub base_url: Option<String>,
    /// PEM certificate chain: serve HTTPS (h2 and HTTP/1.1). Needs --tls-key.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Origins allowed to call from browsers: `*`, or a comma-separated list (then
    /// also enforced on MCP requests that carry an Origin).
    #[arg(long, env = "CORS_ALLOWED_ORIGIN", default_value = "*")]
    pub cors_origin: String,
    /// Methods allowed cross-origin.
    #[arg(
        long,
        env = "CORS_ALLOWED_METHODS",
        default_value = "GET, POST, DELETE, OPTIONS"
    )]
    pub cors_methods: String,
    /// Request headers allowed cross-origin.
    #[arg(
        long,
        env = "CORS_ALLOWED_HEADERS",
        default_value = "Content-Type, Authorization, mcp-protocol-version, mcp-session-id, last-event-id"
    )]
    pub cors_headers: String,
    /// Host names (or host:port) MCP requests may be addressed to, comma-separated; `*`
    /// allows any. Default: loopback names when bound to loopback, any otherwise (a
    /// server behind a Service is reached by names it cannot know).
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Seconds between writes of gateway-reported activity to pods (`nogoo9/last-activity`).
    #[arg(long, env = "ACTIVITY_ANNOTATE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub activity_annotate_seconds: u64,
    /// Namespace users' workspaces (and every pod a user creates) live in; default:
    /// --namespace. Keep it apart from control's own namespace in a cluster.
    #[arg(long, env = "WORKSPACE_NAMESPACE")]
    pub workspace_namespace: Option<String>,
    /// The only ServiceAccount a user's pod may run as (its token is never mounted).
    #[arg(long, env = "WORKSPACE_SERVICE_ACCOUNT", default_value = "default")]
    pub workspace_service_account: String,
    /// Verified identities (`sub`) that are administrators, comma-separated.
    #[arg(long, env = "ADMIN_SUBJECTS", value_delimiter = ',')]
    pub admin_subjects: Vec<String>,
    /// Where in a token a group or role claim is (e.g. `$.groups`); a token whose claim
    /// is --admin-claim-value (or a list containing it) is an administrator's.
    #[arg(long, env = "AUTH_ADMIN_JSONPATH")]
    pub admin_claim_jsonpath: Option<String>,
    /// The claim value that makes a token an administrator's (with --admin-claim-jsonpath).
    #[arg(long, env = "AUTH_ADMIN_VALUE")]
    pub admin_claim_value: Option<String>,
    /// This server's public URL (e.g. `https://mcp.example.com`), used in the RFC 9728
    /// document and 401 challenges instead of the request's Host header.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Host routing at the gateway: workspace URLs become `<scheme>://<id>.DOMAIN[:port]/`
    /// (scheme and port from --gateway-url), each workspace its own browser origin. Give
    /// the gateway the same domain.
    #[arg(long, env = "WORKSPACE_DOMAIN")]
    pub workspace_domain: Option<String>,
    /// Stop workspaces without activity for this long (e.g. `30m`), unless their template
    /// says otherwise (`nogoo9/idle-timeout`). Default: never.
    #[arg(long, env = "DEFAULT_IDLE_TIMEOUT")]
    pub default_idle_timeout: Option<String>,
    /// Stop workspaces this long after they started, whatever their activity (e.g. `8h`),
    /// unless their template says otherwise (`nogoo9/max-lifetime`). Default: never.
    #[arg(long, env = "DEFAULT_MAX_LIFETIME")]
    pub default_max_lifetime: Option<String>,
    /// At most this many live workspaces per user (administrators are exempt); a
    /// template's `nogoo9/max-per-user` overrides it for spawns from that template.
    #[arg(long, env = "MAX_WORKSPACES_PER_USER", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_workspaces_per_user: Option<u32>,
    /// Append one JSON line per MCP tool call here (`-` for stderr; the file is created
    /// 0600). Context values and tokens are never written.
    #[arg(long, env = "AUDIT_LOG")]
    pub audit_log: Option<String>,
    #[command(flatten)]
    pub auth: shared::auth::AuthArgs,
}

/// The original's second names for the CORS variables (`CORS_ORIGIN`, `CORS_METHODS`,
/// `CORS_HEADERS`): used when the primary variable and the flag are both absent.
pub fn apply_env_aliases(args: &mut Args, cli: &[String], env: impl Fn(&str) -> Option<String>) {
    let given = |flag: &str| {
        cli.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let pairs: [(&str, &str, &str, &mut String); 3] = [
        (
            "--cors-origin",
            "CORS_ALLOWED_ORIGIN",
            "CORS_ORIGIN",
            &mut args.cors_origin,
        ),
        (
            "--cors-methods",
            "CORS_ALLOWED_METHODS",
            "CORS_METHODS",
            &mut args.cors_methods,
        ),
        (
            "--cors-headers",
            "CORS_ALLOWED_HEADERS",
            "CORS_HEADERS",
            &mut args.cors_headers,
        ),
    ];
    for (flag, primary, alias, value) in pairs {
        if !given(flag)
            && env(primary).is_none()
            && let Some(v) = env(alias)
        {
            *value = v;
        }
    }
}

/// `LOG_LEVEL` as a tracing filter: the original's `warning` and `fatal` mean `warn`
/// and `error`. The Kubernetes client logs a whole response body when it cannot decode
/// one (other users' pods and their context env, say), so its client module logs errors
/// only, whatever the level.
pub fn log_filter(level: &str) -> String {
    let level = match level.trim() {
        "warning" => "warn",
        "fatal" => "error",
        other => other,
    };
    format!("{level},kube_client::client=error")
}

/// `--base-url` as a clean prefix: `""` or `/a/b` (leading slash, no trailing one).
pub fn normalize_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        });
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "--base-url {raw:?} must be a path like /nocrd9 (letters, digits, -._~ between slashes)"
        ))
    }
}

/// Parsed CORS flags.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `None`: any origin (`*`).
    pub origins: Option<Vec<HeaderValue>>,
    pub methods: Vec<Method>,
    pub headers: Vec<HeaderName>,
}

impl Cors {
    pub fn parse(origin: &str, methods: &str, headers: &str) -> Result<Cors, String> {
        let list = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let origins = if origin.trim() == "*" {
            None
        } else {
            Some(
                list(origin)
                    .iter()
                    .map(|o| {
                        if !(o.starts_with("http://") || o.starts_with("https://")) {
                            return Err(format!(
                                "--cors-origin {o:?} must be `*` or an http(s):// origin"
                            ));
                        }
                        HeaderValue::from_str(o)
                            .map_err(|_| format!("--cors-origin {o:?} is not a valid origin"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let methods = list(methods)
            .iter()
            .map(|m| {
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("--cors-methods: {m:?} is not an HTTP method"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = list(headers)
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| format!("--cors-headers: {h:?} is not a header name"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cors {
            origins,
            methods,
            headers,
        })
    }
}

/// What the HTTP server is configured with beyond the tools' context.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub base_url: String,
    pub cors: Cors,
    /// `None`: the Host header is not checked.
    pub allowed_hosts: Option<Vec<String>>,
    /// Serve the web UI (`UI_ENABLED`).
    pub ui_enabled: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            base_url: String::new(),
            cors: Cors {
                origins: None,
                methods: vec![Method::GET, Method::POST, Method::DELETE, Method::OPTIONS],
                headers: vec![
                    HeaderName::from_static("content-type"),
                    HeaderName::from_static("authorization"),
                    HeaderName::from_static("mcp-protocol-version"),
                    HeaderName::from_static("mcp-session-id"),
                    HeaderName::from_static("last-event-id"),
                ],
            },
            allowed_hosts: Some(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]),
            ui_enabled: true,
        }
    }
}

/// Everything `nocrd9` runs with, checked. Built from the flags by [`ControlConfig::from_args`]
/// or directly ([`ControlConfig::local`] and field updates) by tests and `nocrd9 dev`.
#[derive(Clone)]
pub struct ControlConfig {
    pub transport: Transport,
    pub mode: Mode,
    /// The default namespace (the only one in namespaced mode).
    pub namespace: String,
    /// Where HTTP is served (port 0: any free port).
    pub listen: SocketAddr,
    pub gateway_socket: PathBuf,
    /// Public base URL of the gateway, for workspace URLs.
    pub gateway_url: Option<String>,
    pub default_workspace_port: u16,
    /// Ask the API server which tools this identity can use (SelfSubjectAccessReview).
    pub permission_checks: bool,
    pub pod_security: crate::pod_security::Level,
    pub registry_url: Option<String>,
    pub read_only: bool,
    pub http: HttpOptions,
    /// HTTPS instead of HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How often gateway-reported activity is written to pods.
    pub activity_annotate_every: Duration,
    /// Token verification for the HTTP transport (`None`: auth off).
    pub auth: Option<Arc<shared::auth::Verifier>>,
    /// Where users' workspaces and pods live.
    pub workspace_namespace: String,
    /// The only ServiceAccount users' pods may name.
    pub workspace_service_account: String,
    /// Verified subjects that are administrators (besides tokens with the admin claim).
    pub admin_subjects: std::collections::BTreeSet<String>,
    /// This server's public URL, for documents and challenges (else the checked Host).
    pub public_url: Option<String>,
    /// Host routing's domain (normalised), for workspace URLs.
    pub workspace_domain: Option<String>,
    /// Idle timeout and maximum lifetime when a template names none.
    pub lifecycle: crate::lifecycle::Defaults,
    /// How late activity from other replicas' gateways may be known here (the annotate
    /// interval plus a gateway's report interval): idleness counts beyond it.
    pub activity_slack: Duration,
    /// How often the culler's leader looks for workspaces that are due.
    pub cull_every: Duration,
    /// The culler's Lease timings (`lease_duration`, `renew_every`).
    pub lease_timing: (Duration, Duration),
    pub max_workspaces_per_user: Option<u32>,
    /// Where the audit trail goes (`-`: stderr).
    pub audit_log: Option<String>,
}

/// How often a gateway reports activity to its control (`gateway::sync`).
pub const GATEWAY_REPORT_EVERY: Duration = Duration::from_secs(5);

impl ControlConfig {
    /// Serving HTTP on an ephemeral loopback port in `namespace`, routes on
    /// `gateway_socket`, everything else at its flag's default.
    pub fn local(namespace: &str, gateway_socket: PathBuf) -> ControlConfig {
        ControlConfig {
            transport: Transport::Http,
            mode: Mode::Cluster,
            namespace: namespace.to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            gateway_socket,
            gateway_url: None,
            default_workspace_port: shared::names::DEFAULT_WORKSPACE_PORT,
            permission_checks: true,
            pod_security: crate::pod_security::Level::Baseline,
            registry_url: None,
            read_only: false,
            http: HttpOptions::default(),
            tls: None,
            activity_annotate_every: Duration::from_secs(30),
            auth: None,
            workspace_namespace: namespace.to_string(),
            workspace_service_account: "default".into(),
            admin_subjects: Default::default(),
            public_url: None,
            workspace_domain: None,
            lifecycle: Default::default(),
            activity_slack: Duration::from_secs(30) + GATEWAY_REPORT_EVERY,
            cull_every: Duration::from_secs(5),
            lease_timing: (Duration::from_secs(15), Duration::from_secs(2)),
            max_workspaces_per_user: None,
            audit_log: None,
        }
    }

    /// Checks every flag; every problem is reported at once.
    pub fn from_args(args: &Args) -> Result<ControlConfig, Vec<String>> {
        let mut problems = Vec::new();
        let mut check = |r: Result<(), String>| {
            if let Err(e) = r {
                problems.push(e);
            }
        };
        if shared::ids::WorkspaceId::parse(&args.namespace).is_err() {
            check(Err(format!(
                "--namespace {:?} is not a valid namespace name (a DNS label)",
                args.namespace
            )));
        }
        if args.default_workspace_port == 0 {
            check(Err(
                "--default-workspace-port must be between 1 and 65535".into()
            ));
        }
        if let Some(Command::Dev(dev)) = &args.command
            && let Some(secret) = &dev.jwt_secret
            && secret.len() < 32
        {
            check(Err(format!(
                "nocrd9 dev --jwt-secret (NOCRD9_DEV_JWT_SECRET) must be at least 32 bytes; it has {}",
                secret.len()
            )));
        }
        for (flag, url) in [
            ("--gateway-url", &args.gateway_url),
            ("--registry-url", &args.registry_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                check(Err(format!(
                    "{flag} {url:?} must start with http:// or https://"
                )));
            }
        }
        let workspace_namespace = args
            .workspace_namespace
            .clone()
            .unwrap_or_else(|| args.namespace.clone());
        if args.workspace_namespace.is_some()
            && shared::ids::WorkspaceId::parse(&workspace_namespace).is_err()
        {
            check(Err(format!(
                "--workspace-namespace {workspace_namespace:?} is not a valid namespace name (a DNS label)"
            )));
        } else if args.mode == Mode::Namespaced && workspace_namespace != args.namespace {
            check(Err(format!(
                "--workspace-namespace {workspace_namespace:?} must be --namespace {:?} in namespaced mode (the only namespace this server works in)",
                args.namespace
            )));
        }
        if let Some(why) = shared::k8s_names::dns_subdomain_problem(&args.workspace_service_account)
        {
            check(Err(format!(
                "--workspace-service-account {:?} is not a valid name: {why}",
                args.workspace_service_account
            )));
        }
        if let Some(url) = &args.public_url
            && (!(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(['?', '#', '"', ' ', '\\']))
        {
            check(Err(format!(
                "--public-url {url:?} must be an http(s):// URL without query or fragment"
            )));
        }
        let workspace_domain = match args
            .workspace_domain
            .as_deref()
            .map(shared::ids::workspace_domain)
        {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                check(Err(format!("--workspace-domain (WORKSPACE_DOMAIN): {e}")));
                None
            }
        };
        let mut duration = |flag: &str, v: &Option<String>| match v
            .as_deref()
            .map(crate::lifecycle::parse_duration)
        {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                check(Err(format!("{flag}: {e}")));
                None
            }
        };
        let lifecycle = crate::lifecycle::Defaults {
            idle_timeout: duration(
                "--default-idle-timeout (DEFAULT_IDLE_TIMEOUT)",
                &args.default_idle_timeout,
            ),
            max_lifetime: duration(
                "--default-max-lifetime (DEFAULT_MAX_LIFETIME)",
                &args.default_max_lifetime,
            ),
        };
        let admin_claim = match (&args.admin_claim_jsonpath, &args.admin_claim_value) {
            (None, None) => Ok(None),
            (Some(path), Some(value)) if !value.is_empty() => {
                shared::auth::ClaimPath::parse_setting(path, "--admin-claim-jsonpath (AUTH_ADMIN_JSONPATH)")
                    .map(|path| {
                        Some(shared::auth::AdminClaim {
                            path,
                            value: value.clone(),
                        })
                    })
            }
            _ => Err(
                "--admin-claim-jsonpath (AUTH_ADMIN_JSONPATH) and --admin-claim-value (AUTH_ADMIN_VALUE) go together"
                    .to_string(),
            ),
        };
        let admin_claim = match admin_claim {
            Ok(a) => a,
            Err(e) => {
                check(Err(e));
                None
            }
        };
        let base_url = normalize_base_url(args.base_url.as_deref().unwrap_or_default());
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => crate::tls::server_config(cert, key).map(Some),
            _ => Ok(None),
        };
        let cors = Cors::parse(&args.cors_origin, &args.cors_methods, &args.cors_headers);
        let auth = args.auth.build_with(admin_claim);
        let (base_url, tls, cors, auth) = match (base_url, tls, cors, auth) {
            (Ok(b), Ok(t), Ok(c), Ok(a)) if problems.is_empty() => (b, t, c, a),
            (b, t, c, a) => {
                for e in [b.err(), t.err(), c.err()].into_iter().flatten() {
                    problems.push(e);
                }
                problems.extend(a.err().unwrap_or_default());
                return Err(problems);
            }
        };
        let hosts: Vec<String> = args
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        let allowed_hosts = if hosts.iter().any(|h| h == "*") {
            None
        } else if !hosts.is_empty() {
            Some(hosts)
        } else if args.host.is_loopback() {
            HttpOptions::default().allowed_hosts
        } else {
            // A server behind a Service is reached by names it cannot know.
            None
        };
        Ok(ControlConfig {
            transport: args.transport,
            mode: args.mode,
            namespace: args.namespace.clone(),
            listen: SocketAddr::new(args.host, args.port),
            gateway_socket: args.gateway_socket.clone(),
            gateway_url: args.gateway_url.clone(),
            default_workspace_port: args.default_workspace_port,
            permission_checks: !args.disable_permission_checks,
            pod_security: args.pod_security,
            registry_url: args.registry_url.clone(),
            read_only: args.read_only,
            http: HttpOptions {
                base_url,
                cors,
                allowed_hosts,
                ui_enabled: args.ui_enabled,
            },
            tls: tls.map(Arc::new),
            activity_annotate_every: Duration::from_secs(args.activity_annotate_seconds),
            auth,
            workspace_namespace,
            workspace_service_account: args.workspace_service_account.clone(),
            admin_subjects: args
                .admin_subjects
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            public_url: args
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            workspace_domain,
            lifecycle,
            activity_slack: Duration::from_secs(args.activity_annotate_seconds)
                + GATEWAY_REPORT_EVERY,
            cull_every: Duration::from_secs(5),
            lease_timing: (Duration::from_secs(15), Duration::from_secs(2)),
            max_workspaces_per_user: args.max_workspaces_per_user,
            audit_log: args.audit_log.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let args = Args::try_parse_from([
            "nocrd9",
            "--namespace",
            "Bad_NS",
            "--default-workspace-port",
            "0",
            "--gateway-url",
            "gw:8080",
            "--auth-enabled",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let problems = ControlConfig::from_args(&args).err().expect("invalid");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[3].contains("AUTH_ENABLED needs a key"),
            "{problems:?}"
        );
        let ok = Args::try_parse_from(["nocrd9", "--gateway-url", "http://127.0.0.1:8080"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ControlConfig::from_args(&ok).is_ok());
        assert!(Args::try_parse_from(["nocrd9", "--transport", "carrier-pigeon"]).is_err());
    }

    #[test]
    fn defaults_follow_the_brief_and_cors_aliases_apply() {
        let mut args = Args::try_parse_from(["nocrd9"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.namespace, "nogoo9");
        let env = |k: &str| match k {
            "CORS_ORIGIN" => Some("https://a.example".to_string()),
            "CORS_METHODS" => Some("GET".to_string()),
            "CORS_ALLOWED_HEADERS" => Some("x-primary".to_string()),
            "CORS_HEADERS" => Some("x-alias".to_string()),
            _ => None,
        };
        let cli = vec!["nocrd9".to_string(), "--cors-methods=POST".to_string()];
        args.cors_methods = "POST".into();
        apply_env_aliases(&mut args, &cli, env);
        assert_eq!(args.cors_origin, "https://a.example", "alias used");
        assert_eq!(args.cors_methods, "POST", "the flag wins");
        assert_ne!(args.cors_headers, "x-alias", "the primary variable wins");
        assert_eq!(log_filter("warning"), "warn,kube_client::client=error");
        assert_eq!(log_filter("fatal"), "error,kube_client::client=error");
        assert_eq!(log_filter("debug"), "debug,kube_client::client=error");
    }

    #[test]
    fn base_urls_are_normalized_or_refused() {
        assert_eq!(normalize_base_url("/nocrd9/").as_deref(), Ok("/nocrd9"));
        assert_eq!(normalize_base_url("/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(normalize_base_url("/").as_deref(), Ok(""));
        for bad in ["nocrd9", "/a//b", "/a/../b", "/a b", "/a?x"] {
            assert!(normalize_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cors_flags_are_checked() {
        assert!(Cors::parse("*", "GET, POST", "Content-Type").is_ok_and(|c| c.origins.is_none()));
        let c = Cors::parse("https://a.example, http://localhost:5173", "GET", "x-a")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.origins.map(|o| o.len()), Some(2));
        assert!(
            Cors::parse("a.example", "GET", "x")
                .unwrap_err()
                .contains("--cors-origin")
        );
        assert!(
            Cors::parse("*", "GE T", "x")
                .unwrap_err()
                .contains("--cors-methods")
        );
        assert!(
            Cors::parse("*", "GET", "bad header")
                .unwrap_err()
                .contains("--cors-headers")
        );
    }
}
