//! The no-crd data plane (`nocrd9-gateway`): a Pingora reverse proxy for
//! `/route/<workspace-id>/…` that routes from memory and never calls the Kubernetes API.
//!
//! [`build`] assembles the server (proxy service, route feed, admin listener) so tests
//! can run it in-process; `main.rs` only parses flags and calls it.

pub mod admin;
pub mod metrics;
pub mod proxy;
pub mod reject;
pub mod routing;
pub mod store;
pub mod sync;

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
}

/// A built gateway, not yet running.
pub struct Gateway {
    server: Server,
    pub store: Arc<RouteStore>,
    pub sync: Arc<SyncStatus>,
    pub metrics: Arc<GatewayMetrics>,
}

/// Runs the route feed inside Pingora's runtime until shutdown.
struct SyncService {
    config: SyncConfig,
    store: Arc<RouteStore>,
    status: Arc<SyncStatus>,
}

#[async_trait]
impl BackgroundService for SyncService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let stop = CancellationToken::new();
        let feed = sync::run(
            self.config.clone(),
            self.store.clone(),
            self.status.clone(),
            stop.clone(),
        );
        tokio::pin!(feed);
        tokio::select! {
            _ = &mut feed => {}
            _ = shutdown.changed() => stop.cancel(),
        }
    }
}

pub fn build(config: &GatewayConfig) -> Gateway {
    let conf = ServerConf {
        threads: config.threads.max(1),
        grace_period_seconds: Some(config.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(config.grace_period_secs.min(5)),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let store = RouteStore::new();
    let sync = Arc::new(SyncStatus::default());
    let metrics = Arc::new(GatewayMetrics::default());

    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        GatewayProxy::new(store.clone(), metrics.clone()),
    );
    proxy.add_tcp(&config.listen.to_string());
    server.add_service(proxy);
    server.add_service(background_service(
        "route feed",
        SyncService {
            config: SyncConfig {
                socket: config.control_socket.clone(),
                gateway_id: config.gateway_id.clone(),
            },
            store: store.clone(),
            status: sync.clone(),
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
    Gateway {
        server,
        store,
        sync,
        metrics,
    }
}

impl Gateway {
    /// Runs until `shutdown` fires (tests, embedding). Blocks the calling thread.
    pub fn run(self, shutdown: Box<dyn ShutdownSignalWatch>) {
        self.server.run(RunArgs {
            shutdown_signal: shutdown,
        });
    }

    /// Runs until SIGTERM (graceful) or SIGINT (fast); exits the process.
    pub fn run_forever(self) -> ! {
        self.server.run_forever()
    }
}
