//! The route feed's logic without I/O, in the manner of Sozu's `ConfigState`: a [`Log`]
//! on control's side (commit → version, the frames that bring a gateway up to date, ack
//! checks) and a [`Follower`] on each gateway (snapshot chunks → table, delta → apply or
//! resync, acks). Sockets, timers and tasks belong to the callers — control's
//! `publish.rs`, the gateway's `sync.rs`, `static-routes` and the tests — so every rule
//! of the protocol is here once and is tested without a socket. Tables change only
//! through `table.rs`.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::proto::{PROTOCOL_VERSION, SNAPSHOT_CHUNK_ROUTES, ToControl, ToGateway};
use crate::route::Route;
use crate::table::{Change, RouteTable, TableVersion};

/// Control's authoritative table and the recent change batches, so a gateway gets a
/// snapshot once and then only deltas.
#[derive(Debug, Clone)]
pub struct Log {
    table: RouteTable,
    /// `(version, the changes that produced it)`, oldest first; versions are consecutive.
    batches: VecDeque<(u64, Arc<Vec<Change>>)>,
    /// Table hashes of recent versions, to check acks against.
    hashes: VecDeque<(u64, u64)>,
    capacity: usize,
}

/// How an ack compares with control's table at that version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCheck {
    /// The gateway holds exactly control's table.
    InSync,
    /// Same version, different routes: the gateway must get a snapshot.
    Differs,
    /// Another epoch, or a version no longer remembered.
    Unknown,
}

impl Log {
    /// An empty table at `epoch` (a value that changes on every control start, so
    /// gateways notice the restart), remembering `capacity` change batches.
    pub fn new(epoch: u64, capacity: usize) -> Log {
        let table = RouteTable::new(epoch);
        let hash = table.hash();
        Log {
            table,
            batches: VecDeque::new(),
            hashes: VecDeque::from([(0, hash)]),
            capacity: capacity.max(1),
        }
    }

    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// Commits `changes` as the next version and returns it (the current version when
    /// there is nothing to commit).
    pub fn commit(&mut self, changes: Vec<Change>) -> u64 {
        if changes.is_empty() {
            return self.table.version();
        }
        let version = self.table.commit(&changes);
        self.batches.push_back((version, Arc::new(changes)));
        self.hashes.push_back((version, self.table.hash()));
        while self.batches.len() > self.capacity {
            self.batches.pop_front();
        }
        while self.hashes.len() > self.capacity {
            self.hashes.pop_front();
        }
        version
    }

    /// Makes the table equal to `routes`, committing only the difference.
    pub fn replace_all(&mut self, routes: impl IntoIterator<Item = Route>) -> u64 {
        let target = RouteTable::from_routes(self.table.epoch(), self.table.version(), routes);
        let changes = self.table.diff(&target);
        self.commit(changes)
    }

    /// The whole table as snapshot frames (at least one, even for an empty table).
    pub fn snapshot(&self) -> Vec<ToGateway> {
        let routes: Vec<Route> = self.table.routes().map(|r| (**r).clone()).collect();
        let chunks: Vec<&[Route]> = if routes.is_empty() {
            vec![&[]]
        } else {
            routes.chunks(SNAPSHOT_CHUNK_ROUTES).collect()
        };
        let last = chunks.len() - 1;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| ToGateway::Snapshot {
                epoch: self.table.epoch(),
                version: self.table.version(),
                chunk: i as u32,
                last: i == last,
                routes: chunk.to_vec(),
            })
            .collect()
    }

    /// The frames that bring a gateway holding `from` to the current version: nothing
    /// when it is current, the deltas since when the log still reaches back, otherwise a
    /// snapshot. After sending them the gateway has been sent `self.table().version()`.
    pub fn catch_up(&self, from: Option<TableVersion>) -> Vec<ToGateway> {
        let Some(from) = from.filter(|f| f.epoch == self.table.epoch()) else {
            return self.snapshot();
        };
        let current = self.table.version();
        if from.version == current {
            return Vec::new();
        }
        let reaches = from.version < current
            && self
                .batches
                .front()
                .is_some_and(|(oldest, _)| *oldest <= from.version + 1);
        if !reaches {
            return self.snapshot();
        }
        let mut base = from.version;
        self.batches
            .iter()
            .filter(|(v, _)| *v > from.version)
            .map(|(version, changes)| {
                let delta = ToGateway::Delta {
                    epoch: self.table.epoch(),
                    base_version: base,
                    version: *version,
                    changes: (**changes).clone(),
                };
                base = *version;
                delta
            })
            .collect()
    }

    /// Compares a gateway's ack with this table's hash at that version.
    pub fn check_ack(&self, epoch: u64, version: u64, table_hash: u64) -> AckCheck {
        if epoch != self.table.epoch() {
            return AckCheck::Unknown;
        }
        match self.hashes.iter().find(|(v, _)| *v == version) {
            None => AckCheck::Unknown,
            Some((_, h)) if *h == table_hash => AckCheck::InSync,
            Some(_) => AckCheck::Differs,
        }
    }
}

/// What the gateway does after a frame from control.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Serve this table (an O(1) clone) and ack it with [`ack`].
    Serve(RouteTable),
    /// Send this to control.
    Reply(ToControl),
    /// The frame did not follow our table: send this `Resync` and wait for a snapshot.
    Resync(ToControl),
    /// Control refused this gateway.
    Refused(String),
    /// Nothing to do (a snapshot chunk, a pong, a frame type this build does not know).
    Nothing,
}

/// A snapshot being assembled from its chunks.
#[derive(Debug, Clone)]
struct Assembly {
    epoch: u64,
    version: u64,
    next_chunk: u32,
    routes: Vec<Route>,
}

/// A gateway's side of the feed.
#[derive(Debug, Clone, Default)]
pub struct Follower {
    table: Option<RouteTable>,
    assembling: Option<Assembly>,
}

/// The ack for a table the gateway now serves.
pub fn ack(table: &RouteTable) -> ToControl {
    ToControl::Ack {
        epoch: table.epoch(),
        version: table.version(),
        table_hash: table.hash(),
    }
}

impl Follower {
    /// A follower that already serves `have` (a reconnect) or nothing yet.
    pub fn new(have: Option<RouteTable>) -> Follower {
        Follower {
            table: have,
            assembling: None,
        }
    }

    /// The table applied last.
    pub fn table(&self) -> Option<&RouteTable> {
        self.table.as_ref()
    }

    /// The first frame of a connection.
    pub fn hello(&self, gateway_id: &str) -> ToControl {
        ToControl::Hello {
            proto: PROTOCOL_VERSION,
            gateway_id: gateway_id.to_string(),
            have: self.table.as_ref().map(RouteTable::at),
        }
    }

    pub fn on_frame(&mut self, msg: ToGateway) -> Step {
        match msg {
            ToGateway::Snapshot {
                epoch,
                version,
                chunk,
                last,
                routes,
            } => self.on_chunk(epoch, version, chunk, last, routes),
            ToGateway::Delta {
                epoch,
                base_version,
                version,
                changes,
            } => {
                let Some(table) = self.table.as_mut() else {
                    return resync("a delta arrived before any snapshot");
                };
                // `apply` checks before it changes anything: a refused delta leaves the
                // table as it was.
                match table.apply(epoch, base_version, version, &changes) {
                    Ok(()) => Step::Serve(table.clone()),
                    Err(e) => resync(&e.to_string()),
                }
            }
            ToGateway::Ping { nonce } => Step::Reply(ToControl::Pong { nonce }),
            ToGateway::Nack { reason } => Step::Refused(reason),
            ToGateway::Pong { .. } | ToGateway::Unknown => Step::Nothing,
        }
    }

    fn on_chunk(
        &mut self,
        epoch: u64,
        version: u64,
        chunk: u32,
        last: bool,
        routes: Vec<Route>,
    ) -> Step {
        if chunk == 0 {
            self.assembling = Some(Assembly {
                epoch,
                version,
                next_chunk: 0,
                routes: Vec::new(),
            });
        }
        let Some(assembly) = self.assembling.as_mut() else {
            return resync("a snapshot chunk arrived without its first chunk");
        };
        if (assembly.epoch, assembly.version, assembly.next_chunk) != (epoch, version, chunk) {
            self.assembling = None;
            return resync(&format!(
                "snapshot chunk {chunk} of ({epoch}, {version}) does not follow the chunks before it"
            ));
        }
        assembly.routes.extend(routes);
        assembly.next_chunk += 1;
        if !last {
            return Step::Nothing;
        }
        let done = self.assembling.take().map(|a| a.routes).unwrap_or_default();
        let table = RouteTable::from_routes(epoch, version, done);
        self.table = Some(table.clone());
        Step::Serve(table)
    }
}

fn resync(reason: &str) -> Step {
    Step::Resync(ToControl::Resync {
        reason: reason.to_string(),
    })
}

#[cfg(test)]
mod tests;
