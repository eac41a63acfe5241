//! The real gateway in-process for tests (feature `testkit`): built with [`crate::build`],
//! run on its own thread (Pingora runs its own runtimes and cannot report a port-0
//! bind), stopped when dropped. The handles `build` returns stay with the test, so it can
//! wait for what the gateway has seen (its table, its feed) instead of sleeping.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};

use crate::metrics::GatewayMetrics;
use crate::store::RouteStore;
use crate::sync::SyncStatus;
use crate::{GatewayConfig, TlsFiles, build, limits::Limits};

/// Stops a gateway run by [`crate::Gateway::run`] when the sender fires (or is dropped).
pub struct StopSignal(Mutex<Option<tokio::sync::oneshot::Receiver<()>>>);

impl StopSignal {
    pub fn new() -> (tokio::sync::oneshot::Sender<()>, StopSignal) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (tx, StopSignal(Mutex::new(Some(rx))))
    }
}

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

pub use shared::testkit::free_port;

/// What a test gateway runs with beyond the defaults.
#[derive(Default, Clone)]
pub struct Options {
    pub auth: Option<Arc<shared::auth::Verifier>>,
    pub forward_auth: bool,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    pub default_workspace_port: Option<u16>,
    pub threads: Option<usize>,
    /// Host and path routing (default: path routing only).
    pub routing: crate::routing::Routing,
    /// The audit trail.
    pub audit: Option<shared::audit::AuditLog>,
}

/// A running gateway and its live handles.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub store: Arc<RouteStore>,
    pub sync: Arc<SyncStatus>,
    pub metrics: Arc<GatewayMetrics>,
    pub activity: Arc<shared::activity::ActivityLog>,
    pub waker: Arc<crate::wake::Waker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
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
            gateway_id: format!("gw-test-{}", addr.port()),
            threads: opts.threads.unwrap_or(1),
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
            routing: opts.routing,
            audit: opts.audit,
        };
        let gw = build(&config).expect("the gateway builds");
        let (store, sync, metrics, activity, waker) = (
            gw.store.clone(),
            gw.sync.clone(),
            gw.metrics.clone(),
            gw.activity.clone(),
            gw.waker.clone(),
        );
        let (tx, signal) = StopSignal::new();
        let thread = std::thread::spawn(move || gw.run(Box::new(signal)));
        shared::testkit::eventually_async(
            "the gateway to listen on its proxy and admin ports",
            Duration::from_secs(10),
            || async {
                tokio::net::TcpStream::connect(addr).await.is_ok()
                    && tokio::net::TcpStream::connect(admin).await.is_ok()
            },
        )
        .await;
        TestGateway {
            addr,
            admin,
            store,
            sync,
            metrics,
            activity,
            waker,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Waits until the gateway serves a table whose version is at least `version`.
    pub async fn wait_for_version(&self, version: u64) {
        let store = self.store.clone();
        shared::testkit::eventually(
            &format!("the gateway to serve version {version}"),
            Duration::from_secs(20),
            move || store.is_loaded() && store.load().version() >= version,
        )
        .await;
    }

    /// Waits until the gateway has noticed that control is gone.
    pub async fn wait_disconnected(&self) {
        let sync = self.sync.clone();
        shared::testkit::eventually(
            "the gateway to notice control is gone",
            Duration::from_secs(20),
            move || !sync.connected(),
        )
        .await;
    }

    /// Waits until the gateway is connected to control.
    pub async fn wait_connected(&self) {
        let sync = self.sync.clone();
        shared::testkit::eventually(
            "the gateway to connect to control",
            Duration::from_secs(20),
            move || sync.connected(),
        )
        .await;
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
