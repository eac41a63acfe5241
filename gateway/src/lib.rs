//! The no-crd data plane (`nocrd9-gateway`): a Pingora reverse proxy for
//! `/route/<workspace-id>/…` that routes from memory and never calls the Kubernetes API.
//!
//! [`build`] assembles the server (proxy service, route feed, admin listener) so tests
//! can run it in-process; `main.rs` only parses flags and calls it.

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod answer;
pub mod auth;
pub mod forwarded;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod reject;
pub mod responses;
pub mod routing;
pub mod store;
pub mod sync;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tunnel;
pub mod wake;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminService, AdminState};
use crate::metrics::GatewayMetrics;
use crate::proxy::GatewayProxy;
use crate::store::RouteStore;
use crate::sync::{SyncConfig, SyncStatus};

/// Everything the gateway is told at start.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub control_socket: PathBuf,
    pub gateway_id: String,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Seconds in-flight requests get after SIGTERM before the runtime stops.
    pub grace_period_secs: u64,
    /// Token verification (`None`: auth off, every request may reach any workspace).
    pub auth: Option<Arc<shared::auth::Verifier>>,
    /// Pass the caller's token on to the workspace instead of stripping it.
    pub forward_auth: bool,
    /// Serve TLS (HTTP/2 by ALPN) with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    pub limits: limits::Limits,
    /// The port of workspaces whose route says "the default" (no port annotation).
    pub default_workspace_port: u16,
    /// How often workspace activity is reported to control.
    pub activity_every: std::time::Duration,
    /// Take the listening socket over from a running gateway (zero-downtime upgrade).
    pub upgrade: bool,
    /// Where the old gateway hands its listening sockets to the new one.
    pub upgrade_sock: PathBuf,
    /// Host routing (`--workspace-domain`) and path routing (`--path-routing`).
    pub routing: routing::Routing,
    /// The audit trail (`--audit-log`).
    pub audit: Option<shared::audit::AuditLog>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Loads both files now: Pingora would only find a bad one in its service thread,
    /// and panic there.
    pub fn check(&self) -> Result<(), String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("TLS certificate {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "TLS certificate {}: no certificate in the file",
                self.cert.display()
            ));
        }
        PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("TLS key {}: {e}", self.key.display()))?;
        Ok(())
    }
}

/// Refreshes the JWKS in the background (nothing to do without one).
struct KeyRefreshService {
    verifier: Arc<shared::auth::Verifier>,
}

#[async_trait]
impl BackgroundService for KeyRefreshService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Err(e) = self.verifier.refresh_keys().await {
            tracing::warn!(error = %e, "JWKS not loaded at startup; will retry on demand and in the background");
        }
        self.verifier
            .clone()
            .run_key_refresh(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    }
}

/// A built gateway, not yet running.
pub struct Gateway {
    server: Server,
    pub store: Arc<RouteStore>,
    pub sync: Arc<SyncStatus>,
    pub metrics: Arc<GatewayMetrics>,
    pub activity: Arc<shared::activity::ActivityLog>,
    /// Requests waiting for suspended workspaces to wake.
    pub waker: Arc<wake::Waker>,
    audit: Option<shared::audit::AuditLog>,
}

/// Runs the route feed inside Pingora's runtime until shutdown.
struct SyncService {
    config: SyncConfig,
    store: Arc<RouteStore>,
    status: Arc<SyncStatus>,
    activity: Arc<shared::activity::ActivityLog>,
    waker: Arc<wake::Waker>,
}

#[async_trait]
impl BackgroundService for SyncService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let stop = CancellationToken::new();
        let feed = sync::run(
            self.config.clone(),
            self.store.clone(),
            self.status.clone(),
            self.activity.clone(),
            self.waker.clone(),
            stop.clone(),
        );
        tokio::pin!(feed);
        tokio::select! {
            _ = &mut feed => {}
            _ = shutdown.changed() => stop.cancel(),
        }
    }
}

/// Builds the server. Fails only on TLS files that cannot be loaded.
pub fn build(config: &GatewayConfig) -> Result<Gateway, String> {
    let conf = ServerConf {
        threads: config.threads.max(1),
        grace_period_seconds: Some(config.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(config.grace_period_secs.min(5)),
        // Pingora multiplies this by the threads into one global pool: our flag is the total.
        upstream_keepalive_pool_size: config
            .limits
            .upstream_pool_size
            .div_ceil(config.threads.max(1)),
        ..Default::default()
    };
    let conf = ServerConf {
        upgrade_sock: config.upgrade_sock.display().to_string(),
        ..conf
    };
    let opt = pingora::server::configuration::Opt {
        upgrade: config.upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    // With `upgrade`, this waits for the old gateway (sent SIGQUIT) to hand over its
    // listening socket.
    server.bootstrap();
    let store = RouteStore::new();
    let sync = Arc::new(SyncStatus::default());
    let metrics = Arc::new(GatewayMetrics::new());
    metrics.register_sync(&sync);
    let activity = Arc::new(shared::activity::ActivityLog::default());
    let waker = Arc::new(wake::Waker::default());

    let auth = config.auth.clone().map(|verifier| auth::GatewayAuth {
        verifier,
        forward_auth: config.forward_auth,
    });
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        GatewayProxy::new(
            store.clone(),
            metrics.clone(),
            auth,
            proxy::ProxySettings {
                tls: config.tls.is_some(),
                limits: config.limits.clone(),
                default_workspace_port: config.default_workspace_port,
                activity: activity.clone(),
                routing: config.routing.clone(),
                audit: config.audit.clone(),
                waker: waker.clone(),
            },
        ),
    );
    match &config.tls {
        None => proxy.add_tcp(&config.listen.to_string()),
        Some(files) => {
            files.check()?;
            let (cert, key) = (
                files.cert.display().to_string(),
                files.key.display().to_string(),
            );
            let mut tls = pingora::listeners::tls::TlsSettings::intermediate(&cert, &key)
                .map_err(|e| format!("TLS certificate {cert} / key {key}: {e}"))?;
            tls.enable_h2();
            proxy.add_tls_with_settings(&config.listen.to_string(), None, tls);
        }
    }
    server.add_service(proxy);
    if let Some(verifier) = &config.auth {
        server.add_service(background_service(
            "jwks refresh",
            KeyRefreshService {
                verifier: verifier.clone(),
            },
        ));
    }
    server.add_service(background_service(
        "route feed",
        SyncService {
            config: SyncConfig {
                socket: config.control_socket.clone(),
                gateway_id: config.gateway_id.clone(),
                activity_every: config.activity_every,
            },
            store: store.clone(),
            status: sync.clone(),
            activity: activity.clone(),
            waker: waker.clone(),
        },
    ));
    server.add_service(background_service(
        "admin",
        AdminService {
            addr: config.admin_listen,
            state: Arc::new(AdminState {
                store: store.clone(),
                sync: sync.clone(),
                metrics: metrics.clone(),
            }),
        },
    ));
    Ok(Gateway {
        server,
        store,
        sync,
        metrics,
        activity,
        waker,
        audit: config.audit.clone(),
    })
}

impl Gateway {
    /// Runs until `shutdown` fires (tests, embedding). Blocks the calling thread.
    pub fn run(self, shutdown: Box<dyn ShutdownSignalWatch>) {
        let audit = self.audit.clone();
        self.server.run(RunArgs {
            shutdown_signal: shutdown,
        });
        access_log::flush();
        if let Some(a) = audit {
            a.flush();
        }
    }

    /// Runs until SIGTERM (graceful), SIGQUIT (upgrade) or SIGINT (fast); then writes
    /// the last access-log lines and exits the process.
    pub fn run_forever(self) -> ! {
        let audit = self.audit.clone();
        self.server.run(RunArgs::default());
        access_log::flush();
        if let Some(a) = audit {
            a.flush();
        }
        std::process::exit(0)
    }
}
