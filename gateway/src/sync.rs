//! The route feed's I/O: dial control's Unix socket, hand every frame to the protocol's
//! `shared::feed::Follower` (which decides: serve a table, reply, resync), publish each
//! table off the hot path, and reconnect with backoff. While control is away the last
//! table keeps serving, and a reconnect tells control which table that is (`have`), so
//! it sends only what was missed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use shared::codec::{FrameError, read_frame, write_frame};
use shared::feed::{Follower, Step};
use shared::proto::{ToControl, ToGateway};
use shared::table::RouteTable;
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use shared::activity::ActivityLog;

use crate::store::RouteStore;
use crate::wake::Waker;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The socket is local: a restarted control plane is worth re-dialling often (the
/// gateway serves its last table meanwhile, so this only bounds how stale it gets).
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Control pings every 10 s; longer silence means the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// Activity is reported at most this often by default (per workspace: one entry per report).
pub const ACTIVITY_EVERY: Duration = Duration::from_secs(5);
/// Workspaces idle this long are forgotten by the gateway.
const ACTIVITY_FORGET_MS: u64 = 3_600_000;
/// Reports per frame, far below the frame size limit.
const ACTIVITY_BATCH: usize = 10_000;

/// Sync state for readiness and metrics (staleness = now − last contact).
#[derive(Debug)]
pub struct SyncStatus {
    connected: AtomicBool,
    last_contact_unix_ms: AtomicU64,
    applied: IntCounter,
    resyncs: IntCounter,
}

impl Default for SyncStatus {
    fn default() -> Self {
        let counter =
            |name: &str, help: &str| IntCounter::new(name, help).expect("a valid metric name");
        SyncStatus {
            connected: AtomicBool::new(false),
            last_contact_unix_ms: AtomicU64::new(0),
            applied: counter(
                "nocrd9_gateway_sync_applied_total",
                "Snapshots and deltas applied.",
            ),
            resyncs: counter(
                "nocrd9_gateway_sync_resyncs_total",
                "Frames refused for not following the table (each asks for a snapshot).",
            ),
        }
    }
}

impl SyncStatus {
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Milliseconds since control was last heard from (`None` before first contact).
    pub fn staleness_ms(&self) -> Option<u64> {
        let last = self.last_contact_unix_ms.load(Ordering::Relaxed);
        (last != 0).then(|| now_ms().saturating_sub(last))
    }

    /// Snapshots and deltas applied so far.
    pub fn applied(&self) -> u64 {
        self.applied.get()
    }

    pub fn resyncs(&self) -> u64 {
        self.resyncs.get()
    }

    /// The counters, for the metrics registry.
    pub fn counters(&self) -> [IntCounter; 2] {
        [self.applied.clone(), self.resyncs.clone()]
    }

    fn touch(&self) {
        self.last_contact_unix_ms.store(now_ms(), Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot reach control at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("control refused this gateway: {0}")]
    Refused(String),
    #[error("control closed the channel")]
    Closed,
    #[error("control silent for {0:?}")]
    Silent(Duration),
}

/// The feed's settings.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub socket: PathBuf,
    pub gateway_id: String,
    /// How often activity is reported (each workspace at most once per report).
    pub activity_every: Duration,
}

/// Runs the feed until `shutdown`, reconnecting with exponential backoff and jitter.
pub async fn run(
    config: SyncConfig,
    store: Arc<RouteStore>,
    status: Arc<SyncStatus>,
    activity: Arc<ActivityLog>,
    waker: Arc<Waker>,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session(&config, &store, &status, &activity, &waker) => r,
        };
        status.connected.store(false, Ordering::Relaxed);
        match result {
            // A session that got as far as a table resets the backoff.
            Err(e)
                if status.applied() > 0
                    && matches!(
                        e,
                        SyncError::Closed | SyncError::Silent(_) | SyncError::Frame(_)
                    ) =>
            {
                tracing::warn!(error = %e, "route feed lost; serving the last table while reconnecting");
                backoff = BACKOFF_MIN;
            }
            Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "route feed unavailable"),
            Ok(()) => return,
        }
        let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn session(
    config: &SyncConfig,
    store: &RouteStore,
    status: &SyncStatus,
    activity: &ActivityLog,
    waker: &Waker,
) -> Result<(), SyncError> {
    let stream = UnixStream::connect(&config.socket)
        .await
        .map_err(|source| SyncError::Connect {
            path: config.socket.display().to_string(),
            source,
        })?;
    let (mut rd, mut wr) = stream.into_split();
    let mut follower = Follower::new(store.is_loaded().then(|| (**store.load()).clone()));
    write_frame(&mut wr, &follower.hello(&config.gateway_id)).await?;
    status.connected.store(true, Ordering::Relaxed);
    status.touch();
    // Frames are read on their own task so waiting for one can share a select with the
    // activity timer without ever cancelling a half-read frame.
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel(16);
    let reader = tokio::spawn(async move {
        loop {
            let frame = read_frame::<_, ToGateway>(&mut rd).await;
            let more = matches!(frame, Ok(Some(_)));
            if frames_tx.send(frame).await.is_err() || !more {
                return;
            }
        }
    });
    let _reader = AbortOnDrop(reader);
    // Frames to control go out on their own task too, so applying deltas never waits on
    // a write: were this loop to block writing an ack while control blocks writing the
    // next delta (each end's socket buffer full), the feed would stall for good. Acks
    // only ever need the latest version, so they coalesce in a watch; the rest (pongs,
    // resync requests, activity every few seconds) are few.
    let (out, out_rx) = tokio::sync::mpsc::unbounded_channel::<ToControl>();
    let (acks, acks_rx) = tokio::sync::watch::channel::<Option<ToControl>>(None);
    let _writer = AbortOnDrop(tokio::spawn(write_loop(wr, out_rx, acks_rx)));
    let send = |msg: ToControl| out.send(msg).map_err(|_| SyncError::Closed);
    let mut report = tokio::time::interval(config.activity_every);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Wake asks go out at once, and again while unanswered (`wake.rs`).
    let mut resend = tokio::time::interval(crate::wake::RESEND / 2);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    loop {
        let msg = tokio::select! {
            () = waker.asked() => {
                for workspace_id in waker.due(std::time::Instant::now()) {
                    send(ToControl::Wake { workspace_id })?;
                }
                continue;
            }
            _ = resend.tick() => {
                for workspace_id in waker.due(std::time::Instant::now()) {
                    send(ToControl::Wake { workspace_id })?;
                }
                continue;
            }
            _ = report.tick() => {
                let batch = activity.drain(now_ms(), ACTIVITY_FORGET_MS, ACTIVITY_BATCH);
                if !batch.is_empty() {
                    send(ToControl::Activity { workspaces: batch })?;
                }
                continue;
            }
            frame = tokio::time::timeout_at(heard + SILENCE_LIMIT, frames.recv()) => match frame {
                Err(_) => return Err(SyncError::Silent(SILENCE_LIMIT)),
                Ok(Some(Ok(Some(msg)))) => msg,
                Ok(None) | Ok(Some(Ok(None))) => return Err(SyncError::Closed),
                Ok(Some(Err(e))) => return Err(e.into()),
            },
        };
        heard = tokio::time::Instant::now();
        status.touch();
        match follower.on_frame(msg) {
            Step::Serve(table) => publish(&acks, store, status, table),
            Step::Reply(msg) => send(msg)?,
            Step::Resync(msg) => {
                status.resyncs.inc();
                tracing::warn!(
                    ?msg,
                    "the route feed did not follow our table; asking for a snapshot"
                );
                send(msg)?;
            }
            Step::Refused(reason) => return Err(SyncError::Refused(reason)),
            Step::Nothing => {}
        }
    }
}

/// Aborts the frame reader when the session ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves the table and queues its ack (replacing any ack not yet written).
fn publish(
    acks: &tokio::sync::watch::Sender<Option<ToControl>>,
    store: &RouteStore,
    status: &SyncStatus,
    table: RouteTable,
) {
    let ack = shared::feed::ack(&table);
    store.replace(table);
    status.applied.inc();
    acks.send_replace(Some(ack));
}

/// Writes queued frames and the latest ack until the session ends or a write fails
/// (then the read side sees the broken connection and the session reconnects).
async fn write_loop<W: tokio::io::AsyncWrite + Unpin>(
    mut wr: W,
    mut out: tokio::sync::mpsc::UnboundedReceiver<ToControl>,
    mut acks: tokio::sync::watch::Receiver<Option<ToControl>>,
) {
    loop {
        let frame = tokio::select! {
            msg = out.recv() => match msg {
                Some(m) => m,
                None => return,
            },
            changed = acks.changed() => {
                if changed.is_err() {
                    return;
                }
                match acks.borrow_and_update().clone() {
                    Some(ack) => ack,
                    None => continue,
                }
            }
        };
        if let Err(e) = write_frame(&mut wr, &frame).await {
            tracing::debug!(error = %e, "writing to control failed");
            return;
        }
    }
}
