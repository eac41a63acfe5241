// nocrd9 patch (see vendor/pingora-core/README.md): the keep-alive pool of upstream
// streams, without a task per idle connection.
//
// Upstream's `pingora_pool::ConnectionPool` wraps every released stream in an
// `Arc<tokio::sync::Mutex>`, adds it to a global LRU (an `Arc<Notify>` each), makes a
// oneshot channel and spawns an `idle_poll` task that holds the lock and waits for the
// stream to be taken, evicted, closed or timed out; taking it back wakes that task and
// waits for it to let go. That is a task spawn, two channel allocations and two
// cross-task wake-ups per proxied request, which showed in the gateway's profile as ~10 %
// of its CPU. Here the streams sit in a map under one short lock: `take` pops the most
// recently released stream for a key (the caller checks it is still open, as before, with
// a non-blocking read), `put` adds one and evicts the least recently released beyond the
// capacity, and streams idle past their timeout are dropped by a sweep that `put` runs at
// most once a second. What is lost: an idle connection the server closed is noticed when
// it is taken or swept, not at once (its fd lingers in CLOSE_WAIT until then).

//
// Per request the pool is one `take` and one `put`, so both avoid work that grows with the
// number of keys: a key's (usually empty) list stays in the map between uses instead of
// being freed and allocated again (empty lists are dropped by the sweep), keys are hashed
// with one multiplication (they are hashes already), and the release order is a queue
// appended to on `put` whose entries for streams taken since are skipped when popped,
// instead of a search tree updated on every `take` and `put`.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::protocols::Stream;

/// How often `put` looks for streams idle past their timeout.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Idle {
    stream: Stream,
    since: Instant,
    expires: Option<Instant>,
    seq: u64,
}

/// Reuse keys are hashes of the peer already: mixing them once is enough.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26);
    }
}

type ByKey = HashMap<u64, Vec<Idle>, BuildHasherDefault<KeyHasher>>;

struct Inner {
    /// Idle streams per reuse key, the most recently released last (a key's list may be
    /// empty until the next sweep).
    by_key: ByKey,
    /// (seq, key) in release order, the least recently released first (the eviction
    /// order). Entries of streams taken since are skipped when popped and dropped when
    /// the queue is compacted.
    order: VecDeque<(u64, u64)>,
    /// Streams in `by_key`.
    live: usize,
    next_seq: u64,
    last_sweep: Instant,
}

/// Idle upstream streams, by reuse key, at most `capacity` of them.
pub(crate) struct IdlePool {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// Streams that left the pool unused, with how long they were idle (dropped, and so
/// closed, by the caller outside the lock).
pub(crate) type Dropped = Vec<(Stream, Duration)>;

impl IdlePool {
    pub(crate) fn new(capacity: usize) -> Self {
        IdlePool {
            inner: Mutex::new(Inner {
                by_key: ByKey::default(),
                order: VecDeque::new(),
                live: 0,
                next_seq: 0,
                last_sweep: Instant::now(),
            }),
            capacity: capacity.max(1),
        }
    }

    /// The most recently released stream for `key` that has not timed out.
    pub(crate) fn take(&self, key: u64) -> Option<Stream> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let found = {
            let mut inner = self.inner.lock();
            let Inner { by_key, live, .. } = &mut *inner;
            let list = by_key.get_mut(&key)?;
            let mut found = None;
            while let Some(idle) = list.pop() {
                *live -= 1;
                if idle.expires.is_some_and(|e| e <= now) {
                    expired.push(idle.stream);
                } else {
                    found = Some(idle.stream);
                    break;
                }
            }
            found
        };
        drop(expired);
        found
    }

    /// Keeps `stream` for reuse under `key` for at most `idle_timeout`; returns what was
    /// evicted to make room or found timed out.
    pub(crate) fn put(&self, key: u64, stream: Stream, idle_timeout: Option<Duration>) -> Dropped {
        let now = Instant::now();
        let mut dropped = Vec::new();
        let mut inner = self.inner.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.by_key.entry(key).or_default().push(Idle {
            stream,
            since: now,
            expires: idle_timeout.map(|t| now + t),
            seq,
        });
        inner.order.push_back((seq, key));
        inner.live += 1;
        while inner.live > self.capacity {
            let Some((old_seq, old_key)) = inner.order.pop_front() else {
                break;
            };
            // `None`: that stream was taken since; the next entry is older than the rest.
            if let Some(idle) = remove_seq(&mut inner.by_key, old_key, old_seq) {
                inner.live -= 1;
                dropped.push((idle.stream, now.saturating_duration_since(idle.since)));
            }
        }
        if now.saturating_duration_since(inner.last_sweep) >= SWEEP_EVERY {
            inner.last_sweep = now;
            let Inner { by_key, live, .. } = &mut *inner;
            for list in by_key.values_mut() {
                let mut i = 0;
                while i < list.len() {
                    if list[i].expires.is_some_and(|e| e <= now) {
                        let idle = list.remove(i);
                        *live -= 1;
                        dropped.push((idle.stream, now.saturating_duration_since(idle.since)));
                    } else {
                        i += 1;
                    }
                }
            }
            by_key.retain(|_, list| !list.is_empty());
        }
        // Entries of taken streams pile up in `order` (one per request): compact it once
        // it is mostly stale, which keeps each `put` amortised O(1).
        if inner.order.len() > 2 * inner.live + 1024 {
            let Inner { by_key, order, .. } = &mut *inner;
            order.retain(|(seq, key)| {
                by_key
                    .get(key)
                    .is_some_and(|list| list.iter().any(|i| i.seq == *seq))
            });
        }
        dropped
    }

}

fn remove_seq(by_key: &mut ByKey, key: u64, seq: u64) -> Option<Idle> {
    let list = by_key.get_mut(&key)?;
    let pos = list.iter().position(|i| i.seq == seq)?;
    Some(list.remove(pos))
}
