//! `nocrd9`'s flags and environment variables (the names of the original no-crd), and
//! the one validated configuration built from them.

use std::net::IpAddr;
use std::path::PathBuf;

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
/// and `error`.
pub fn log_filter(level: &str) -> String {
    match level.trim() {
        "warning" => "warn".into(),
        "fatal" => "error".into(),
        other => other.to_string(),
    }
}

/// Every problem with the configuration, reported at once.
pub fn validate(args: &Args) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if shared::ids::WorkspaceId::parse(&args.namespace).is_err() {
        problems.push(format!(
            "--namespace {:?} is not a valid namespace name (a DNS label)",
            args.namespace
        ));
    }
    if args.default_workspace_port == 0 {
        problems.push("--default-workspace-port must be between 1 and 65535".into());
    }
    if let Some(Command::Dev(dev)) = &args.command
        && let Some(secret) = &dev.jwt_secret
        && secret.len() < 32
    {
        problems.push(format!(
            "nocrd9 dev --jwt-secret (NOCRD9_DEV_JWT_SECRET) must be at least 32 bytes; it has {}",
            secret.len()
        ));
    }
    if let Some(url) = &args.gateway_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push(format!(
            "--gateway-url {url:?} must start with http:// or https://"
        ));
    }
    if let Some(url) = &args.registry_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push(format!(
            "--registry-url {url:?} must start with http:// or https://"
        ));
    }
    if let Some(base) = &args.base_url
        && let Err(e) = crate::http::normalize_base_url(base)
    {
        problems.push(e);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key)
        && let Err(e) = crate::tls::server_config(cert, key)
    {
        problems.push(e);
    }
    if let Err(e) =
        crate::http::Cors::parse(&args.cors_origin, &args.cors_methods, &args.cors_headers)
    {
        problems.push(e);
    }
    if let Err(auth) = args.auth.build() {
        problems.extend(auth);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
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
        let problems = validate(&args).expect_err("invalid");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[3].contains("AUTH_ENABLED needs a key"),
            "{problems:?}"
        );
        let ok = Args::try_parse_from(["nocrd9", "--gateway-url", "http://127.0.0.1:8080"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(validate(&ok).is_ok());
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
        assert_eq!(log_filter("warning"), "warn");
        assert_eq!(log_filter("fatal"), "error");
        assert_eq!(log_filter("debug"), "debug");
    }
}
