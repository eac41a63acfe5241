//! The simulated kubelet: runs every pod the store holds on one node, `kube-sim`.
//!
//! Images cannot be pulled or run here, so a container whose image is `local` (or
//! `local/...`) runs its command as a local process, and any other image is stood in for
//! by the built-in workspace app (an HTTP + WebSocket echo server on `podIP:port`).
//! Non-local init containers and hooks are simulated as succeeding, and say so in the
//! pod's log.

pub mod app;
mod downward;
mod ipam;
mod logs;
mod pod;
mod process;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

pub use app::AppIdentity;
pub use ipam::PodCidr;
pub use logs::{LogBuffer, LogQuery, truncate_bytes};
pub use process::is_local_image;

use super::faults::FaultState;
use super::store::{Event, EventType, Kind, ObjKey, Store, WatchStart};

/// What the pod's worker should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodSignal {
    Run,
    /// Deleted with a grace period: run preStop hooks, stop, then remove the object.
    Terminate,
    /// Removed from the store (or the simulator is stopping): kill at once.
    Gone,
}

#[derive(Default)]
struct ContainerLogs {
    current: Arc<LogBuffer>,
    previous: Option<Arc<LogBuffer>>,
    started: bool,
}

/// Log buffers of every container run, by pod UID and container name.
#[derive(Default)]
pub struct LogRegistry {
    by_pod: Mutex<HashMap<String, HashMap<String, ContainerLogs>>>,
}

impl LogRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, ContainerLogs>>> {
        self.by_pod.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The buffer of the container's current run (created if needed).
    fn current(&self, uid: &str, container: &str) -> Arc<LogBuffer> {
        self.lock()
            .entry(uid.to_string())
            .or_default()
            .entry(container.to_string())
            .or_default()
            .current
            .clone()
    }

    /// A new run starts: the current buffer becomes the previous one.
    fn start_run(&self, uid: &str, container: &str) -> Arc<LogBuffer> {
        let mut all = self.lock();
        let entry = all
            .entry(uid.to_string())
            .or_default()
            .entry(container.to_string())
            .or_default();
        if entry.started {
            entry.current.close();
            entry.previous = Some(std::mem::take(&mut entry.current));
        }
        entry.started = true;
        entry.current.clone()
    }

    /// A run ended: its log is also the "previous" one from now on (what
    /// `logs --previous` shows during a crash-loop back-off).
    fn mark_exited(&self, uid: &str, container: &str) {
        let mut all = self.lock();
        if let Some(entry) = all.get_mut(uid).and_then(|p| p.get_mut(container)) {
            entry.current.close();
            entry.previous = Some(entry.current.clone());
        }
    }

    fn remove_pod(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// The log of one container run; `None` when it never started (or, with `previous`,
    /// when there is no earlier run).
    pub fn get(&self, uid: &str, container: &str, previous: bool) -> Option<Arc<LogBuffer>> {
        let all = self.lock();
        let entry = all.get(uid)?.get(container)?;
        if previous {
            entry.previous.clone()
        } else if entry.started {
            Some(entry.current.clone())
        } else {
            None
        }
    }
}

/// Kubelet settings.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub pod_cidr: PodCidr,
    pub reuse_ips: bool,
    /// Pods get IPs and become Ready, but nothing is started for them.
    pub external_workloads: bool,
    /// Where pod directories (working dirs, emptyDir volumes) live.
    pub state_dir: PathBuf,
}

pub(crate) struct KubeletCtx {
    store: Arc<Store>,
    faults: Arc<FaultState>,
    ipam: Mutex<ipam::Ipam>,
    external_workloads: bool,
    state_dir: PathBuf,
    logs: Arc<LogRegistry>,
    shutdown: CancellationToken,
}

/// Addresses tried before a pod is reported as unable to get a sandbox.
const MAX_BIND_ATTEMPTS: usize = 64;

impl KubeletCtx {
    /// Allocates an address and binds the app's ports on it; an address some other
    /// process holds is skipped (and kept out of the pool).
    fn allocate_ip(
        &self,
        ports: &BTreeSet<u16>,
    ) -> Result<(Ipv4Addr, Vec<(tokio::net::TcpListener, u16)>), String> {
        for _ in 0..MAX_BIND_ATTEMPTS {
            let ip = self
                .ipam
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allocate();
            let Some(ip) = ip else {
                return Err("FailedCreatePodSandBox: the pod CIDR has no free address".into());
            };
            match pod::bind_all(ip, ports) {
                Ok(listeners) => return Ok((ip, listeners)),
                Err(e) => {
                    tracing::warn!(%ip, error = %e, "pod address unusable, trying the next one")
                }
            }
        }
        Err(format!(
            "FailedCreatePodSandBox: no bindable address after {MAX_BIND_ATTEMPTS} attempts"
        ))
    }

    fn release_ip(&self, ip: Ipv4Addr) {
        self.ipam
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(ip);
    }
}

/// Live pod workers by pod UID, each with the channel that tells it to stop.
type Workers = HashMap<String, (ObjKey, watch::Sender<PodSignal>)>;

/// The running kubelet.
pub struct Kubelet {
    ctx: Arc<KubeletCtx>,
    workers: Arc<Mutex<Workers>>,
    tasks: tokio_util::task::TaskTracker,
}

impl Kubelet {
    pub fn start(
        store: Arc<Store>,
        faults: Arc<FaultState>,
        config: KubeletConfig,
        shutdown: CancellationToken,
    ) -> Arc<Kubelet> {
        let ctx = Arc::new(KubeletCtx {
            store,
            faults,
            ipam: Mutex::new(ipam::Ipam::new(config.pod_cidr, config.reuse_ips)),
            external_workloads: config.external_workloads,
            state_dir: config.state_dir,
            logs: Arc::new(LogRegistry::default()),
            shutdown,
        });
        let kubelet = Arc::new(Kubelet {
            ctx,
            workers: Arc::default(),
            tasks: tokio_util::task::TaskTracker::new(),
        });
        let k = kubelet.clone();
        tokio::spawn(async move { k.sync_loop().await });
        kubelet
    }

    pub fn logs(&self) -> &LogRegistry {
        &self.ctx.logs
    }

    /// Number of pods with a live worker.
    pub fn running_pods(&self) -> usize {
        self.workers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Pod IPs in use.
    pub fn ips_in_use(&self) -> usize {
        self.ctx
            .ipam
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_use()
    }

    async fn sync_loop(self: Arc<Self>) {
        loop {
            let (_, start, mut rx) = match self.ctx.store.watch(Kind::Pod, None) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "kubelet cannot watch pods");
                    return;
                }
            };
            if let WatchStart::Now(objects) = start {
                self.resync(
                    objects
                        .values()
                        .map(|o| (o.key.clone(), o.uid.clone(), o.value()))
                        .collect(),
                );
            }
            loop {
                let ev = tokio::select! {
                    _ = self.ctx.shutdown.cancelled() => return self.stop_all().await,
                    ev = rx.recv() => ev,
                };
                match ev {
                    Ok(ev) => self.on_event(&ev),
                    // Fell behind: re-list and reconcile, as a real kubelet relists.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }

    fn resync(&self, pods: Vec<(ObjKey, String, Value)>) {
        let live: BTreeSet<String> = pods.iter().map(|(_, uid, _)| uid.clone()).collect();
        {
            let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            for (uid, (_, tx)) in workers.iter() {
                if !live.contains(uid) {
                    tx.send_replace(PodSignal::Gone);
                }
            }
        }
        for (key, uid, pod) in pods {
            self.ensure_worker(key, uid.clone(), &pod);
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                self.signal(&uid, PodSignal::Terminate);
            }
        }
    }

    fn on_event(&self, ev: &Event) {
        let uid = ev.obj.uid.clone();
        match ev.etype {
            EventType::Added => self.ensure_worker(ev.obj.key.clone(), uid, &ev.obj.value()),
            // Only a new deletion matters; status writes are the kubelet's own.
            EventType::Modified => {
                let was = ev.old.as_ref().is_some_and(|o| o.terminating);
                if ev.obj.terminating && !was {
                    self.signal(&uid, PodSignal::Terminate);
                }
                // New labels or annotations reach the pod's downwardAPI files (the real
                // kubelet rewrites them on the pod's next sync).
                if let Some(old) = &ev.old {
                    let (old, new) = (old.value(), ev.obj.value());
                    let dir = pod::pod_dir(&self.ctx.state_dir, &ev.obj.key, &uid);
                    if downward::metadata_changed(&old, &new) && dir.exists() {
                        downward::refresh(&dir, &new);
                    }
                }
            }
            EventType::Deleted => self.signal(&uid, PodSignal::Gone),
        }
    }

    fn signal(&self, uid: &str, signal: PodSignal) {
        if let Some((_, tx)) = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
        {
            tx.send_if_modified(|s| {
                let stronger = matches!(
                    (*s, signal),
                    (PodSignal::Run, _) | (PodSignal::Terminate, PodSignal::Gone)
                );
                if stronger {
                    *s = signal;
                }
                stronger
            });
        }
    }

    fn ensure_worker(&self, key: ObjKey, uid: String, pod: &Value) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if workers.contains_key(&uid) {
            return;
        }
        let (tx, rx) = watch::channel(PodSignal::Run);
        workers.insert(uid.clone(), (key.clone(), tx));
        drop(workers);
        let worker = pod::PodWorker::new(self.ctx.clone(), key, uid.clone(), pod.clone(), rx);
        let registry = self.workers.clone();
        self.tasks.spawn(async move {
            worker.run().await;
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&uid);
        });
    }

    /// Kills every pod's processes and waits (bounded) for the workers to end.
    pub async fn stop_all(&self) {
        {
            let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            for (_, tx) in workers.values() {
                tx.send_replace(PodSignal::Gone);
            }
        }
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }
}
