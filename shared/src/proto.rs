//! The control → gateway channel protocol, version 1.
//!
//! ```text
//! gateway                                   control (listens on a 0600 Unix socket)
//!   ── Hello { proto, gateway_id, have } ──▶
//!   ◀── Snapshot { epoch, version, chunk, last, routes } … (≤ 1,000 routes per chunk)
//!   ── Ack { epoch, version, table_hash } ──▶
//!   ◀── Delta { epoch, base_version, version, changes } …
//!   ── Ack … / Activity { workspaces } ──▶      (activity coalesced per workspace)
//!   ◀── Ping / Pong ──▶                          (every 10 s; a silent peer is dropped)
//! ```
//!
//! A gateway that cannot apply a delta (wrong epoch or base) sends `Resync` and gets a
//! new snapshot; an unsupported `proto` gets `Nack` and the connection closes. A gateway
//! that reconnects says which table it `have`s; when control's log still reaches back to
//! it, the gateway gets only the deltas since, not a snapshot. An ack whose table hash
//! differs from control's at that version gets a fresh snapshot. Both ends' logic is
//! `feed.rs` (no I/O); the sockets are the gateway's `sync.rs` and control's `publish.rs`.
//!
//! **Evolution rules** (both ends ship from this workspace, but a gateway and a control
//! of adjacent releases must interoperate during a rolling upgrade):
//! 1. Only add fields, each with `#[serde(default)]`; never rename, retype or remove one.
//! 2. Only add message types; a receiver that does not know a type ignores the frame
//!    (gateway) or answers `Nack` and carries on (control) — never panics, never drops
//!    the connection (the `Unknown` variants).
//! 3. Incompatible changes bump `PROTOCOL_VERSION`; control keeps answering the previous
//!    version for one release.
//! 4. `tests/compat.rs` pins v1 frames: they must keep decoding.
//! 5. The table hash in acks covers a route's v1 fields only (`table.rs`): a gateway of
//!    the previous release drops fields it does not know and must still agree, or every
//!    ack would trigger a snapshot.

use serde::{Deserialize, Serialize};

use crate::ids::WorkspaceId;
use crate::route::Route;
use crate::table::{Change, TableVersion};

pub const PROTOCOL_VERSION: u32 = 1;

/// Routes per snapshot chunk, so no frame comes near `MAX_FRAME_BYTES`.
pub const SNAPSHOT_CHUNK_ROUTES: usize = 1000;

/// Frames larger than this are refused before any allocation.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Gateway → control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToControl {
    Hello {
        proto: u32,
        gateway_id: String,
        /// The table the gateway already serves (after a reconnect).
        #[serde(default)]
        have: Option<TableVersion>,
    },
    Ack {
        epoch: u64,
        version: u64,
        table_hash: u64,
    },
    Resync {
        reason: String,
    },
    Activity {
        #[serde(default)]
        workspaces: Vec<Activity>,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// The owner asked for a suspended workspace with `wake-on-request`: start it again.
    /// (The gateway checked the token and the owner; control trusts its 0600 socket.)
    Wake {
        workspace_id: WorkspaceId,
    },
    /// A message type this build does not know (from a newer gateway): answered with
    /// `Nack`, never fatal (evolution rule 2).
    #[serde(other)]
    Unknown,
}

/// Control → gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToGateway {
    Snapshot {
        epoch: u64,
        version: u64,
        chunk: u32,
        last: bool,
        #[serde(default)]
        routes: Vec<Route>,
    },
    Delta {
        epoch: u64,
        base_version: u64,
        version: u64,
        #[serde(default)]
        changes: Vec<Change>,
    },
    Nack {
        reason: String,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// A message type this build does not know (from a newer control): ignored
    /// (evolution rule 2).
    #[serde(other)]
    Unknown,
}

/// Last activity seen by a gateway for one workspace (requests and WebSocket data frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub workspace_id: WorkspaceId,
    pub pod_uid: String,
    pub last_active_unix_ms: u64,
}
