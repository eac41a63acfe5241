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

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
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

struct Inner {
    /// Idle streams per reuse key, the most recently released last.
    by_key: HashMap<u64, Vec<Idle>>,
    /// seq → key, the least recently released first (the eviction order).
    order: BTreeMap<u64, u64>,
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
                by_key: HashMap::new(),
                order: BTreeMap::new(),
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
            let Inner { by_key, order, .. } = &mut *inner;
            let list = by_key.get_mut(&key)?;
            let mut found = None;
            while let Some(idle) = list.pop() {
                order.remove(&idle.seq);
                if idle.expires.is_some_and(|e| e <= now) {
                    expired.push(idle.stream);
                } else {
                    found = Some(idle.stream);
                    break;
                }
            }
            if list.is_empty() {
                by_key.remove(&key);
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
        inner.order.insert(seq, key);
        while inner.order.len() > self.capacity {
            let Some((old_seq, old_key)) = inner.order.pop_first() else {
                break;
            };
            if let Some(idle) = remove_seq(&mut inner.by_key, old_key, old_seq) {
                dropped.push((idle.stream, now.saturating_duration_since(idle.since)));
            }
        }
        if now.saturating_duration_since(inner.last_sweep) >= SWEEP_EVERY {
            inner.last_sweep = now;
            let expired: Vec<(u64, u64)> = inner
                .by_key
                .iter()
                .flat_map(|(k, list)| {
                    list.iter()
                        .filter(|i| i.expires.is_some_and(|e| e <= now))
                        .map(move |i| (*k, i.seq))
                })
                .collect();
            for (k, s) in expired {
                inner.order.remove(&s);
                if let Some(idle) = remove_seq(&mut inner.by_key, k, s) {
                    dropped.push((idle.stream, now.saturating_duration_since(idle.since)));
                }
            }
        }
        dropped
    }

}

fn remove_seq(by_key: &mut HashMap<u64, Vec<Idle>>, key: u64, seq: u64) -> Option<Idle> {
    let list = by_key.get_mut(&key)?;
    let pos = list.iter().position(|i| i.seq == seq)?;
    let idle = list.remove(pos);
    if list.is_empty() {
        by_key.remove(&key);
    }
    Some(idle)
}
