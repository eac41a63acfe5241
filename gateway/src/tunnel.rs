//! Upgraded connections (WebSockets) carried by a small copy loop of their own.
//!
//! Pingora keeps an upgraded connection inside its request's task for the connection's
//! whole life: the proxy state machine (~23 KiB), both sessions' header and body buffers
//! and a channel pair stay allocated while the WebSocket is open, idle or not (68 KiB of
//! gateway memory per held connection in the load suite). Our vendored pingora-proxy
//! hands both streams over right after the `101` went downstream
//! (`ProxyHttp::take_upgraded`) and ends the request's task; this loop then holds the two
//! streams, two byte counters and one timer. Bytes are read into one scratch buffer per
//! thread and written on at once; only what a peer is not ready to take is copied to the
//! heap, and that copy is freed as soon as it drains, so an idle tunnel owns no buffer.
//!
//! Semantics: bytes go through unchanged both ways; an end of stream on one side is passed
//! on as a half-close (`shutdown` of the other side's write half); the tunnel ends when
//! both directions have ended, on the first read or write error, or when no byte moved in
//! either direction for the idle timeout. [`TunnelEvents::on_end`] is called exactly once,
//! also when the task is dropped because the process stops.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pingora::protocols::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The size of the per-thread buffer every tunnel on that thread reads into.
const SCRATCH_SIZE: usize = 16 * 1024;
/// Reads per direction before the task yields to others (fairness under a busy tunnel).
const READS_PER_POLL: usize = 16;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// What a tunnel reports to.
pub trait TunnelEvents: Send {
    /// `chunk` was read from the client (`from_client`) or from the upstream and is being
    /// passed on. Chunks follow reads, not protocol frames.
    fn on_data(&mut self, from_client: bool, chunk: &[u8]);
    /// The tunnel ended; called exactly once.
    fn on_end(&mut self, end: &TunnelEnd);
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelClose {
    /// Both sides ended their streams.
    Closed,
    /// No byte moved either way for the idle timeout.
    IdleTimeout,
    /// Reading from or writing to the client failed.
    ClientError,
    /// Reading from or writing to the upstream failed.
    UpstreamError,
    /// The task was dropped (the process is stopping).
    Stopped,
}

impl TunnelClose {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelClose::Closed => "closed",
            TunnelClose::IdleTimeout => "idle_timeout",
            TunnelClose::ClientError => "client_error",
            TunnelClose::UpstreamError => "upstream_error",
            TunnelClose::Stopped => "stopped",
        }
    }
}

/// What [`TunnelEvents::on_end`] is told.
#[derive(Debug, Clone, Copy)]
pub struct TunnelEnd {
    /// Bytes read from the client (including any that arrived with the handshake).
    pub bytes_from_client: u64,
    /// Bytes read from the upstream.
    pub bytes_to_client: u64,
    pub close: TunnelClose,
}

/// One direction: bytes read from `src` and written to `dst`.
#[derive(Default)]
struct Half {
    /// Bytes read but not yet written (empty and unallocated when none).
    pending: BytesMut,
    flush: bool,
    eof: bool,
    done: bool,
    bytes: u64,
}

impl Half {
    fn with_early(early: BytesMut) -> Self {
        Half {
            flush: !early.is_empty(),
            bytes: early.len() as u64,
            pending: early,
            ..Half::default()
        }
    }

    /// Moves bytes until `src` or `dst` is not ready; `Ready(Ok)` once this direction is done.
    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut Stream,
        dst: &mut Stream,
        from_client: bool,
        events: &mut dyn TunnelEvents,
        moved: &mut bool,
    ) -> Poll<Result<(), TunnelClose>> {
        let (read_err, write_err) = if from_client {
            (TunnelClose::ClientError, TunnelClose::UpstreamError)
        } else {
            (TunnelClose::UpstreamError, TunnelClose::ClientError)
        };
        if self.done {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..READS_PER_POLL {
            while !self.pending.is_empty() {
                let n = ready!(Pin::new(&mut *dst).poll_write(cx, &self.pending))
                    .map_err(|_| write_err)?;
                if n == 0 {
                    return Poll::Ready(Err(write_err));
                }
                self.pending.advance(n);
                *moved = true;
            }
            if self.pending.capacity() > 0 {
                // drained: give the copy back rather than keep it for an idle tunnel
                self.pending = BytesMut::new();
            }
            if self.flush {
                ready!(Pin::new(&mut *dst).poll_flush(cx)).map_err(|_| write_err)?;
                self.flush = false;
            }
            if self.eof {
                // pass the end on as a half-close; a peer already gone is no error here
                let _ = ready!(Pin::new(&mut *dst).poll_shutdown(cx));
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            let step = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let mut buf = ReadBuf::new(&mut scratch[..]);
                ready!(Pin::new(&mut *src).poll_read(cx, &mut buf)).map_err(|_| read_err)?;
                let chunk = buf.filled();
                if chunk.is_empty() {
                    self.eof = true;
                    return Poll::Ready(Ok(()));
                }
                *moved = true;
                self.bytes += chunk.len() as u64;
                events.on_data(from_client, chunk);
                let mut written = 0;
                while written < chunk.len() {
                    match Pin::new(&mut *dst).poll_write(cx, &chunk[written..]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            return Poll::Ready(Err(write_err));
                        }
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Pending => break,
                    }
                }
                if written < chunk.len() {
                    self.pending.extend_from_slice(&chunk[written..]);
                }
                self.flush = true;
                Poll::Ready(Ok(()))
            });
            ready!(step)?;
        }
        // more may be waiting: let other tasks run first, then come back
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The tunnel's state; reports its end when dropped, however it ends.
struct Tunnel {
    client: Stream,
    upstream: Stream,
    to_upstream: Half,
    to_client: Half,
    events: Box<dyn TunnelEvents>,
    close: TunnelClose,
}

impl Tunnel {
    /// How it ended, for the report made on drop.
    fn end_as(&mut self, close: TunnelClose) {
        self.close = close;
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.events.on_end(&TunnelEnd {
            bytes_from_client: self.to_upstream.bytes,
            bytes_to_client: self.to_client.bytes,
            close: self.close,
        });
    }
}

/// Carries an upgraded connection until it ends. `client` and `upstream` are the streams
/// with the bytes already read from each past the handshake, which go first. The state is
/// built before the future is first polled, so [`TunnelEvents::on_end`] runs even for a
/// tunnel dropped unpolled.
pub fn run(
    client: (Stream, BytesMut),
    upstream: (Stream, BytesMut),
    idle_timeout: Option<Duration>,
    mut events: Box<dyn TunnelEvents>,
) -> impl Future<Output = ()> + Send {
    for (from_client, early) in [(true, &client.1), (false, &upstream.1)] {
        if !early.is_empty() {
            events.on_data(from_client, early);
        }
    }
    let mut t = Tunnel {
        to_upstream: Half::with_early(client.1),
        to_client: Half::with_early(upstream.1),
        client: client.0,
        upstream: upstream.0,
        events,
        close: TunnelClose::Stopped,
    };
    // the 101 may still sit in the client stream's write buffer
    t.to_client.flush = true;
    async move {
        let mut idle = idle_timeout.map(|d| (d, Box::pin(tokio::time::sleep(d))));
        let mut last_moved = Instant::now();
        let close = poll_fn(|cx| {
            let mut moved = false;
            let t = &mut t;
            let up = t.to_upstream.poll_copy(
                cx,
                &mut t.client,
                &mut t.upstream,
                true,
                &mut *t.events,
                &mut moved,
            );
            let down = t.to_client.poll_copy(
                cx,
                &mut t.upstream,
                &mut t.client,
                false,
                &mut *t.events,
                &mut moved,
            );
            match (up, down) {
                (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => return Poll::Ready(e),
                (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => {
                    return Poll::Ready(TunnelClose::Closed);
                }
                _ => {}
            }
            if moved {
                // the timer is only re-armed when it fires, not on every chunk
                last_moved = Instant::now();
            }
            if let Some((limit, sleep)) = idle.as_mut() {
                while sleep.as_mut().poll(cx).is_ready() {
                    let deadline = last_moved + *limit;
                    if deadline <= Instant::now() {
                        return Poll::Ready(TunnelClose::IdleTimeout);
                    }
                    sleep.as_mut().reset(deadline);
                }
            }
            Poll::Pending
        })
        .await;
        t.end_as(close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Chunks seen (direction, length) and the end, once.
    type Log = (Vec<(bool, usize)>, Option<TunnelEnd>);

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Log>>);

    impl TunnelEvents for Seen {
        fn on_data(&mut self, from_client: bool, chunk: &[u8]) {
            self.0.lock().unwrap().0.push((from_client, chunk.len()));
        }
        fn on_end(&mut self, end: &TunnelEnd) {
            let mut s = self.0.lock().unwrap();
            assert!(s.1.is_none(), "on_end called twice");
            s.1 = Some(*end);
        }
    }

    fn pair() -> (Stream, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(1024);
        (Box::new(a), b)
    }

    #[tokio::test]
    async fn early_bytes_go_first_then_both_ways_and_half_closes_pass_on() {
        let (client, mut client_peer) = pair();
        let (upstream, mut upstream_peer) = pair();
        let seen = Seen::default();
        let task = tokio::spawn(run(
            (client, BytesMut::from(&b"early-from-client "[..])),
            (upstream, BytesMut::from(&b"early-from-upstream "[..])),
            None,
            Box::new(seen.clone()),
        ));
        // more than the duplex buffer and the scratch buffer, so writes back up
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let writer = {
            let big = big.clone();
            tokio::spawn(async move {
                client_peer.write_all(&big).await.unwrap();
                client_peer.shutdown().await.unwrap();
                let mut back = Vec::new();
                client_peer.read_to_end(&mut back).await.unwrap();
                back
            })
        };
        let mut got = Vec::new();
        upstream_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..18], b"early-from-client ");
        assert!(got[18..] == big[..], "byte for byte");
        upstream_peer.write_all(b"bye").await.unwrap();
        upstream_peer.shutdown().await.unwrap();
        let back = writer.await.unwrap();
        assert_eq!(back, b"early-from-upstream bye");
        task.await.unwrap();
        let s = seen.0.lock().unwrap();
        let end = s.1.expect("ended");
        assert_eq!(end.close, TunnelClose::Closed);
        assert_eq!(end.bytes_from_client, 18 + big.len() as u64);
        assert_eq!(end.bytes_to_client, 23);
        let from_client: usize = s.0.iter().filter(|(c, _)| *c).map(|(_, n)| n).sum();
        assert_eq!(from_client as u64, end.bytes_from_client);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_ends_after_the_timeout_and_traffic_keeps_it_open() {
        let (client, mut client_peer) = pair();
        let (upstream, mut upstream_peer) = pair();
        let seen = Seen::default();
        let task = tokio::spawn(run(
            (client, BytesMut::new()),
            (upstream, BytesMut::new()),
            Some(Duration::from_secs(10)),
            Box::new(seen.clone()),
        ));
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client_peer.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            upstream_peer.read_exact(&mut b).await.unwrap();
        }
        assert!(!task.is_finished(), "30 s of traffic every 6 s is not idle");
        tokio::time::sleep(Duration::from_secs(11)).await;
        task.await.unwrap();
        let end = seen.0.lock().unwrap().1.expect("ended");
        assert_eq!(end.close, TunnelClose::IdleTimeout);
        assert_eq!(end.bytes_from_client, 5);
    }

    #[tokio::test]
    async fn a_dropped_tunnel_still_reports_its_end() {
        let (client, _client_peer) = pair();
        let (upstream, _upstream_peer) = pair();
        let seen = Seen::default();
        let task = tokio::spawn(run(
            (client, BytesMut::new()),
            (upstream, BytesMut::new()),
            None,
            Box::new(seen.clone()),
        ));
        tokio::task::yield_now().await;
        task.abort();
        let _ = task.await;
        let end = seen.0.lock().unwrap().1.expect("ended");
        assert_eq!(end.close, TunnelClose::Stopped);
    }
}
