//! Log lines written in batches: callers append whole lines to a buffer under a short
//! lock; a background thread writes the buffer every `every` (and a caller does when it
//! passes [`FLUSH_AT`]); [`LineWriter::flush`] writes what is left (call it when the
//! process stops). One `write` per batch instead of one per line, and lines are never
//! split or interleaved: each batch is whole lines.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A caller writes the batch itself when the buffer holds this much.
pub const FLUSH_AT: usize = 64 * 1024;

/// Where the lines go.
pub type Sink = Box<dyn Write + Send>;

pub struct LineWriter {
    buf: Mutex<Vec<u8>>,
    sink: Mutex<Sink>,
}

impl LineWriter {
    /// A writer to `sink`, flushed every `every` by a thread of its own (named `name`).
    pub fn start(name: &str, sink: Sink, every: Duration) -> Arc<LineWriter> {
        let w = Arc::new(LineWriter {
            buf: Mutex::new(Vec::with_capacity(FLUSH_AT * 2)),
            sink: Mutex::new(sink),
        });
        let weak = Arc::downgrade(&w);
        let _ = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    match weak.upgrade() {
                        Some(w) => w.flush(),
                        None => return,
                    }
                }
            });
        w
    }

    /// Appends one line (`line` without its newline).
    pub fn line(&self, line: &str) {
        let full = {
            let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            buf.len() >= FLUSH_AT
        };
        if full {
            self.flush();
        }
    }

    /// Writes what is buffered.
    pub fn flush(&self) {
        // The sink's lock is taken first, so batches reach it in the order they were cut.
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let pending = {
            let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            if buf.is_empty() {
                return;
            }
            std::mem::replace(&mut *buf, Vec::with_capacity(FLUSH_AT * 2))
        };
        let _ = sink.write_all(&pending);
        let _ = sink.flush();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map(|mut v| v.extend_from_slice(b)).ok();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order_when_flushed() {
        let out = Shared::default();
        let w = LineWriter::start(
            "test-lines",
            Box::new(out.clone()),
            Duration::from_secs(3600),
        );
        w.line("one");
        w.line("two");
        assert!(
            out.0.lock().map(|v| v.is_empty()).unwrap_or(false),
            "batched"
        );
        w.flush();
        assert_eq!(
            out.0.lock().map(|v| v.clone()).unwrap_or_default(),
            b"one\ntwo\n"
        );
        let big = "x".repeat(FLUSH_AT);
        w.line(&big);
        assert_eq!(
            out.0.lock().map(|v| v.len()).unwrap_or(0),
            8 + FLUSH_AT + 1,
            "a full buffer is written by the caller"
        );
    }
}
