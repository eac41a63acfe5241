//! Start-up for tests (feature `testkit`): a fresh simulated cluster and a control plane
//! on it, configured directly (no argv), with the temporary directory that holds the
//! route socket. Every test in every crate that needs "kube-sim + control" uses this.

use std::path::PathBuf;

use kube_sim::{Sim, SimConfig};

use crate::config::ControlConfig;
use crate::run::Control;

/// A running simulated cluster and control plane; dropped or [`Harness::stop`]ped at the
/// end of a test.
pub struct Harness {
    pub sim: Sim,
    pub control: Control,
    /// Holds the route socket (and whatever else a test puts there).
    pub dir: tempfile::TempDir,
}

/// `kube-sim` from `sim`, then control in namespace `default` with routes on
/// `<dir>/control.sock`, HTTP on an ephemeral loopback port, changed by `configure`.
pub async fn start(sim: SimConfig, configure: impl FnOnce(&mut ControlConfig)) -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(sim).await.expect("kube-sim starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = ControlConfig::local("default", dir.path().join("control.sock"));
    configure(&mut config);
    let client = sim.client().await.expect("a client for kube-sim");
    let control = Control::start(&config, client)
        .await
        .expect("control starts");
    Harness { sim, control, dir }
}

impl Harness {
    /// The MCP endpoint (`http://<addr>/mcp`, or under the configured base URL).
    pub fn mcp_url(&self) -> String {
        format!(
            "http://{}/mcp",
            self.control.http_addr.expect("control serves HTTP")
        )
    }

    /// The route socket gateways connect to.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// A Kubernetes client for the simulated cluster (as its admin).
    pub async fn kube(&self) -> kube::Client {
        self.sim.client().await.expect("a client for kube-sim")
    }

    pub async fn stop(self) {
        self.control.stop().await;
        self.sim.shutdown().await;
    }
}

/// A route publisher alone (no cluster, no control plane) serving gateways on `socket`
/// with `epoch`, for tests that publish routes by hand; it stops when the token is
/// cancelled. Needs a tokio runtime.
pub fn route_feed(
    socket: &std::path::Path,
    epoch: u64,
) -> (
    crate::publish::Publisher,
    tokio_util::sync::CancellationToken,
) {
    let publisher = crate::publish::Publisher::new(epoch);
    let listener = crate::publish::Publisher::bind(socket).expect("the route socket");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let (p, s) = (publisher.clone(), stop.clone());
        async move { p.serve(listener, s).await }
    });
    (publisher, stop)
}

/// An HS256 token for `sub`, valid for ten minutes.
pub fn token(secret: &str, sub: &str) -> String {
    shared::auth::mint::hs256(secret.as_bytes(), &shared::auth::mint::claims_for(sub, 600))
        .expect("a token")
}
