//! The route publisher: control's side of the channel to the gateways.
//!
//! Control owns the one authoritative [`RouteTable`]. Every change bumps its version and
//! is kept in a bounded log of change batches, so each connected gateway gets a
//! snapshot once and then only deltas — never a diff of the whole table per update. A
//! gateway that falls behind the log (or asks to resync) gets a fresh snapshot.
//! [`Publisher::wait_applied`] resolves once every connected gateway has acked a
//! version, which is how `spawn_workspace` returns only when its URL already works.
//!
//! The socket is created with mode 0600 and a peer must run as the same user.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shared::codec::{FrameError, read_frame, write_frame};
use shared::feed::{AckCheck, Log};
use shared::proto::{PROTOCOL_VERSION, ToControl, ToGateway};
use shared::table::{Change, RouteTable, TableVersion};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Change batches kept for deltas; a gateway further behind gets a snapshot.
const LOG_BATCHES: usize = 10_000;
/// How often each side pings, and how long silence is tolerated.
const PING_EVERY: Duration = Duration::from_secs(10);
const SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// How long a new connection may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("binding the gateway socket {path}: {source}")]
    Bind {
        path: String,
        source: std::io::Error,
    },
    #[error("timed out after {0:?} waiting for every gateway to apply the route")]
    NotApplied(Duration),
}

/// What one connected gateway last told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    pub gateway_id: String,
    pub acked: Option<TableVersion>,
    /// Whether its acked table hash matched ours at that version.
    pub in_sync: bool,
}

struct Inner {
    log: Mutex<Log>,
    version_tx: watch::Sender<u64>,
    gateways: Mutex<HashMap<u64, GatewayStatus>>,
    acks_tx: watch::Sender<u64>,
    next_conn: AtomicU64,
    activity: Arc<shared::activity::ActivityLog>,
    /// Where gateways' wake requests go (`run.rs` resumes the workspace).
    wakes: Mutex<Option<tokio::sync::mpsc::UnboundedSender<shared::ids::WorkspaceId>>>,
}

/// Cheap to clone; all clones publish the same table.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

impl Publisher {
    /// A publisher whose table starts empty at `epoch` (use a value that changes on every
    /// start, such as the start time, so gateways notice a restart).
    pub fn new(epoch: u64) -> Self {
        Publisher {
            inner: Arc::new(Inner {
                log: Mutex::new(Log::new(epoch, LOG_BATCHES)),
                version_tx: watch::channel(0).0,
                gateways: Mutex::new(HashMap::new()),
                acks_tx: watch::channel(0).0,
                next_conn: AtomicU64::new(1),
                activity: Arc::default(),
                wakes: Mutex::new(None),
            }),
        }
    }

    /// Workspace activity reported by every gateway (latest wins).
    pub fn activity(&self) -> &shared::activity::ActivityLog {
        &self.inner.activity
    }

    /// Wake requests from gateways go to `tx` from now on.
    pub fn on_wake(&self, tx: tokio::sync::mpsc::UnboundedSender<shared::ids::WorkspaceId>) {
        *self.inner.wakes.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.inner.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gateways_lock(&self) -> MutexGuard<'_, HashMap<u64, GatewayStatus>> {
        self.inner
            .gateways
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `changes` as one new version and returns it (the current version when
    /// `changes` is empty).
    pub fn update(&self, changes: Vec<Change>) -> u64 {
        let version = self.log().commit(changes);
        self.inner.version_tx.send_if_modified(|v| {
            let changed = *v != version;
            *v = version;
            changed
        });
        version
    }

    /// Replaces the whole table (after a relist), publishing only the difference.
    pub fn replace_all(&self, routes: impl IntoIterator<Item = shared::route::Route>) -> u64 {
        let version = self.log().replace_all(routes);
        self.inner.version_tx.send_if_modified(|v| {
            let changed = *v != version;
            *v = version;
            changed
        });
        version
    }

    /// Notified with the new version after every update.
    pub fn subscribe_versions(&self) -> watch::Receiver<u64> {
        self.inner.version_tx.subscribe()
    }

    /// The current table (an O(1) clone).
    pub fn table(&self) -> RouteTable {
        self.log().table().clone()
    }

    pub fn gateways(&self) -> Vec<GatewayStatus> {
        let mut all: Vec<GatewayStatus> = self.gateways_lock().values().cloned().collect();
        all.sort_by(|a, b| a.gateway_id.cmp(&b.gateway_id));
        all
    }

    /// Waits until every connected gateway has acked `version` or later (at once when
    /// none is connected).
    pub async fn wait_applied(&self, version: u64, timeout: Duration) -> Result<(), PublishError> {
        let epoch = self.log().table().epoch();
        let mut acks = self.inner.acks_tx.subscribe();
        let done = |p: &Publisher| {
            p.gateways_lock().values().all(|g| {
                g.acked
                    .is_some_and(|a| a.epoch == epoch && a.version >= version)
            })
        };
        tokio::time::timeout(timeout, async {
            loop {
                if done(self) {
                    return;
                }
                if acks.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .map_err(|_| PublishError::NotApplied(timeout))
    }

    /// Binds the socket (mode 0600, replacing a stale socket file) and serves gateways
    /// until `shutdown`.
    pub fn bind(path: &Path) -> Result<UnixListener, PublishError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |source| PublishError::Bind {
            path: path.display().to_string(),
            source,
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() {
                std::fs::remove_file(path).map_err(err)?;
            }
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        Ok(listener)
    }

    pub async fn serve(&self, listener: UnixListener, shutdown: CancellationToken) {
        let my_uid = nix::unistd::Uid::current().as_raw();
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway socket accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == my_uid => {}
                Ok(cred) => {
                    tracing::warn!(
                        peer_uid = cred.uid(),
                        "refusing a gateway connection from another user"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the gateway connection's credentials");
                    continue;
                }
            }
            let publisher = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let conn = publisher.inner.next_conn.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = publisher.session(conn, stream, shutdown).await {
                    tracing::info!(error = %e, "gateway connection ended");
                }
                publisher.gateways_lock().remove(&conn);
                publisher.inner.acks_tx.send_modify(|n| *n += 1);
            });
        }
    }

    /// One gateway connection: Hello, snapshot, then deltas, acks and pings.
    async fn session(
        &self,
        conn: u64,
        stream: UnixStream,
        shutdown: CancellationToken,
    ) -> Result<(), FrameError> {
        let (mut rd, mut wr) = stream.into_split();
        let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame::<_, ToControl>(&mut rd)).await;
        let (gateway_id, have) = match hello {
            Ok(Ok(Some(ToControl::Hello {
                proto,
                gateway_id,
                have,
            }))) if proto == PROTOCOL_VERSION => (gateway_id, have),
            Ok(Ok(Some(ToControl::Hello { proto, .. }))) => {
                let reason = format!(
                    "unsupported protocol version {proto}; this control speaks {PROTOCOL_VERSION}"
                );
                write_frame(&mut wr, &ToGateway::Nack { reason }).await?;
                return Ok(());
            }
            Ok(Ok(Some(_))) => {
                write_frame(
                    &mut wr,
                    &ToGateway::Nack {
                        reason: "the first message must be hello".into(),
                    },
                )
                .await?;
                return Ok(());
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        tracing::info!(%gateway_id, "gateway connected");
        self.gateways_lock().insert(
            conn,
            GatewayStatus {
                gateway_id: gateway_id.clone(),
                acked: None,
                in_sync: false,
            },
        );

        // Frames from the gateway arrive through a channel so writes never wait on reads.
        let (in_tx, mut incoming) = mpsc::channel::<Result<ToControl, FrameError>>(64);
        let reader = tokio::spawn(async move {
            loop {
                match read_frame::<_, ToControl>(&mut rd).await {
                    Ok(Some(msg)) => {
                        if in_tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = in_tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        let result = self
            .stream_updates(conn, have, &mut wr, &mut incoming, shutdown)
            .await;
        reader.abort();
        tracing::info!(%gateway_id, "gateway disconnected");
        result
    }

    /// Writes what brings a gateway that has `from` up to date; returns the version it
    /// has then been sent.
    async fn catch_up<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        from: Option<TableVersion>,
    ) -> Result<TableVersion, FrameError> {
        let (frames, now) = {
            let log = self.log();
            (log.catch_up(from), log.table().at())
        };
        for frame in &frames {
            write_frame(wr, frame).await?;
        }
        Ok(now)
    }

    async fn stream_updates<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        conn: u64,
        have: Option<TableVersion>,
        wr: &mut W,
        incoming: &mut mpsc::Receiver<Result<ToControl, FrameError>>,
        shutdown: CancellationToken,
    ) -> Result<(), FrameError> {
        let mut versions = self.inner.version_tx.subscribe();
        // A reconnecting gateway that still holds a table this log reaches back to gets
        // only the deltas since; anyone else a snapshot.
        let mut sent = self.catch_up(wr, have).await?;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut last_heard = tokio::time::Instant::now();
        let mut nonce = 0u64;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                changed = versions.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    sent = self.catch_up(wr, Some(sent)).await?;
                }
                msg = incoming.recv() => {
                    let Some(msg) = msg else { return Ok(()) };
                    last_heard = tokio::time::Instant::now();
                    match msg? {
                        ToControl::Ack { epoch, version, table_hash } => {
                            if self.record_ack(conn, epoch, version, table_hash) == AckCheck::Differs {
                                tracing::warn!(version, "a gateway's table differs from control's at the same version; sending a snapshot");
                                sent = self.catch_up(wr, None).await?;
                            }
                        }
                        ToControl::Resync { reason } => {
                            tracing::info!(%reason, "gateway asked for a resync");
                            sent = self.catch_up(wr, None).await?;
                        }
                        ToControl::Ping { nonce } => write_frame(wr, &ToGateway::Pong { nonce }).await?,
                        ToControl::Pong { .. } => {}
                        ToControl::Activity { workspaces } => self.inner.activity.merge(&workspaces),
                        ToControl::Wake { workspace_id } => {
                            let wakes = self.inner.wakes.lock().unwrap_or_else(|p| p.into_inner()).clone();
                            match wakes {
                                Some(tx) => { let _ = tx.send(workspace_id); }
                                None => tracing::debug!(workspace = %workspace_id, "a wake request with nobody to act on it"),
                            }
                        }
                        ToControl::Hello { .. } => {
                            write_frame(wr, &ToGateway::Nack { reason: "hello was already received".into() }).await?;
                            return Ok(());
                        }
                        // A newer gateway's message: say so, and carry on (evolution rule 2).
                        ToControl::Unknown => {
                            write_frame(wr, &ToGateway::Nack { reason: "unknown message type; ignored".into() }).await?;
                        }
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        tracing::warn!("gateway silent for {SILENCE_LIMIT:?}; dropping it");
                        return Ok(());
                    }
                    nonce += 1;
                    write_frame(wr, &ToGateway::Ping { nonce }).await?;
                }
            }
        }
    }

    fn record_ack(&self, conn: u64, epoch: u64, version: u64, table_hash: u64) -> AckCheck {
        let check = self.log().check_ack(epoch, version, table_hash);
        if let Some(g) = self.gateways_lock().get_mut(&conn) {
            g.acked = Some(TableVersion { epoch, version });
            g.in_sync = check == AckCheck::InSync;
        }
        self.inner.acks_tx.send_modify(|n| *n += 1);
        check
    }
}

#[cfg(test)]
mod tests;
