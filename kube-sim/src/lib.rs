//! kube-sim: a simulated Kubernetes API server and kubelet, faithful to the real ones for
//! everything no-crd uses. See `loadtest/README.md` for exactly what is simulated.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = kube_sim::Sim::start(kube_sim::SimConfig::for_tests()).await?;
//! let client = sim.client().await?;          // a kube::Client for the simulated cluster
//! std::fs::write("kc.yaml", sim.kubeconfig())?; // or a kubeconfig for other clients
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod faults;
pub mod kubeconfig;
pub mod kubelet;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selectors;
mod server;
pub mod status;
pub mod store;
pub mod tls;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use auth::DenyRule;
pub use faults::Faults;
pub use kubelet::PodCidr;

use store::{Change, Kind, ObjKey, Store};

/// Everything the simulator can be told at start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    /// Refuse plain HTTP on the port (TLS is always served; see `server.rs`).
    pub tls_only: bool,
    pub pod_cidr: PodCidr,
    pub reuse_ips: bool,
    pub external_workloads: bool,
    pub deny: Vec<DenyRule>,
    pub faults: Faults,
    /// Events (and snapshots) kept per kind for resuming watches and exact reads.
    pub history: usize,
    pub bookmark_interval: Duration,
    /// The bearer token; random when `None`.
    pub token: Option<String>,
    /// Where pod directories go; a temporary directory (removed at shutdown) when `None`.
    pub state_dir: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_only: false,
            pod_cidr: PodCidr {
                base: std::net::Ipv4Addr::new(127, 10, 0, 0),
                prefix: 16,
            },
            reuse_ips: false,
            external_workloads: false,
            deny: Vec::new(),
            faults: Faults::default(),
            history: 20_000,
            bookmark_interval: Duration::from_secs(60),
            token: None,
            state_dir: None,
        }
    }
}

impl SimConfig {
    /// Defaults for tests: a random /24 pod CIDR inside 127.64.0.0/10, so simulators in
    /// parallel test processes never hand out the same pod IP, and fast bookmarks.
    pub fn for_tests() -> Self {
        let (b, c) = (rand::random_range(64u8..128), rand::random_range(0u8..=255));
        SimConfig {
            pod_cidr: PodCidr {
                base: std::net::Ipv4Addr::new(127, b, c, 0),
                prefix: 24,
            },
            bookmark_interval: Duration::from_secs(1),
            ..SimConfig::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the listen address must be on loopback (127.0.0.0/8 or ::1), got {0}")]
    NotLoopback(SocketAddr),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("creating the state directory: {0}")]
    StateDir(std::io::Error),
    #[error("faults: {0}")]
    Faults(String),
}

/// A running simulator.
pub struct Sim {
    addr: SocketAddr,
    url: String,
    token: String,
    ca_pem: String,
    store: Arc<Store>,
    kubelet: Arc<kubelet::Kubelet>,
    faults: Arc<faults::FaultState>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    _state_dir: Option<tempfile::TempDir>,
}

impl Sim {
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        if !config.listen.ip().is_loopback() {
            return Err(SimError::NotLoopback(config.listen));
        }
        config.faults.validate().map_err(SimError::Faults)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let tls = tls::generate(addr.ip())?;
        let url = format!("https://{addr}");
        let token = config
            .token
            .clone()
            .unwrap_or_else(|| Alphanumeric.sample_string(&mut rand::rng(), 40));
        let (state_dir, temp) = match &config.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(SimError::StateDir)?;
                (dir.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("kube-sim-")
                    .tempdir()
                    .map_err(SimError::StateDir)?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let shutdown = CancellationToken::new();
        let store = Arc::new(Store::new(config.history));
        let faults = Arc::new(faults::FaultState::new(config.faults.clone()));
        let kubelet = kubelet::Kubelet::start(
            store.clone(),
            faults.clone(),
            kubelet::KubeletConfig {
                pod_cidr: config.pod_cidr,
                reuse_ips: config.reuse_ips,
                external_workloads: config.external_workloads,
                state_dir,
            },
            shutdown.clone(),
        );
        let state = Arc::new(api::ApiState {
            store: store.clone(),
            kubelet: kubelet.clone(),
            faults: faults.clone(),
            authorizer: auth::Authorizer::new(config.deny.clone()),
            token: token.clone(),
            bookmark_interval: config.bookmark_interval,
            server_address: addr.to_string(),
            shutdown: shutdown.clone(),
        });
        for ns in ["default", "kube-system", "kube-public"] {
            create_namespace(&state, ns);
        }
        let server = tokio::spawn(server::serve(
            listener,
            tls.server_config.clone(),
            config.tls_only,
            state,
            shutdown.clone(),
        ));
        Ok(Sim {
            addr,
            url,
            token,
            ca_pem: tls.ca_pem,
            store,
            kubelet,
            faults,
            shutdown,
            server,
            _state_dir: temp,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTPS URL (what the kubeconfig names).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same port over plain HTTP (unless started with `tls_only`).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The CA that signed the server certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig (YAML) for this cluster over HTTPS, current namespace `default`.
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url, &self.token, Some(&self.ca_pem), "default")
    }

    /// The same over plain HTTP (kube-rs and the Python client send tokens over plain
    /// HTTP; kubectl does not, by design).
    pub fn kubeconfig_plain(&self) -> String {
        kubeconfig::render(&self.http_url(), &self.token, None, "default")
    }

    /// A kube-rs client for this cluster (through the same kubeconfig other clients use).
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig())
            .map_err(kube::Error::InferKubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(kube::Error::InferKubeconfig)?;
        kube::Client::try_from(config)
    }

    /// Direct access to the store (benchmarks and assertions).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn kubelet(&self) -> &Arc<kubelet::Kubelet> {
        &self.kubelet
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        self.faults.set(faults)
    }

    /// Stops serving, kills every process the simulated pods started, and waits for it.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.kubelet.stop_all().await;
        let _ = self.server.await;
    }
}

fn create_namespace(state: &api::ApiState, name: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    if let Ok(value) = resources::admit_create(Kind::Namespace, "", name, body) {
        let _ = state
            .store
            .mutate(Kind::Namespace, &ObjKey::new("", name), |_| {
                Ok(Change::Put(value))
            });
    }
    api::seed_namespace(state, name);
}
