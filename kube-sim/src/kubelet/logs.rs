//! Container logs: a bounded in-memory buffer per container run, readable with the
//! options of `pods/log` (tail, since, timestamps, limitBytes, follow).

use std::collections::VecDeque;
use std::sync::Mutex;

use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

/// Bytes kept per container run; older lines are dropped (the kubelet rotates logs too).
const MAX_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct LogLine {
    pub at: Timestamp,
    pub text: String,
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    bytes: usize,
    /// Total lines ever appended; readers use it as a cursor.
    appended: u64,
    closed: bool,
}

/// One container run's output. Appended to by the runtime, read by `pods/log`.
#[derive(Debug)]
pub struct LogBuffer {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        LogBuffer {
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(0).0,
        }
    }
}

/// Read options of `pods/log`.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub tail_lines: Option<usize>,
    pub since: Option<Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

impl LogBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, text: impl Into<String>) {
        let text = text.into();
        let seq = {
            let mut inner = self.lock();
            inner.bytes += text.len() + 1;
            inner.lines.push_back(LogLine {
                at: Timestamp::now(),
                text,
            });
            while inner.bytes > MAX_BYTES {
                match inner.lines.pop_front() {
                    Some(old) => inner.bytes -= old.text.len() + 1,
                    None => break,
                }
            }
            inner.appended += 1;
            inner.appended
        };
        self.changed.send_replace(seq);
    }

    /// Marks the run as finished: followers stop after the last line.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.send_modify(|_| {});
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn format(line: &LogLine, timestamps: bool) -> String {
        if timestamps {
            format!("{} {}\n", line.at, line.text)
        } else {
            format!("{}\n", line.text)
        }
    }

    /// The lines matching `q` now, and the cursor to follow from.
    pub fn snapshot(&self, q: &LogQuery) -> (String, u64) {
        let inner = self.lock();
        let eligible: Vec<&LogLine> = inner
            .lines
            .iter()
            .filter(|l| q.since.is_none_or(|s| l.at >= s))
            .collect();
        let skip = q.tail_lines.map_or(0, |n| eligible.len().saturating_sub(n));
        let mut out = String::new();
        for line in &eligible[skip..] {
            out.push_str(&Self::format(line, q.timestamps));
        }
        (out, inner.appended)
    }

    /// Lines appended after `cursor`, the new cursor, and whether the run has ended.
    pub fn since_cursor(&self, cursor: u64, timestamps: bool) -> (String, u64, bool) {
        let inner = self.lock();
        let first_kept = inner.appended - inner.lines.len() as u64;
        let start = cursor.saturating_sub(first_kept) as usize;
        let mut out = String::new();
        for line in inner.lines.iter().skip(start) {
            out.push_str(&Self::format(line, timestamps));
        }
        (out, inner.appended, inner.closed)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Cuts `text` to at most `limit` bytes on a char boundary.
pub fn truncate_bytes(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_and_timestamps() {
        let buf = LogBuffer::default();
        for i in 0..5 {
            buf.push(format!("line {i}"));
        }
        let (text, cursor) = buf.snapshot(&LogQuery {
            tail_lines: Some(2),
            ..Default::default()
        });
        assert_eq!(text, "line 3\nline 4\n");
        assert_eq!(cursor, 5);
        let (text, _) = buf.snapshot(&LogQuery {
            tail_lines: Some(1),
            timestamps: true,
            ..Default::default()
        });
        assert!(text.ends_with("Z line 4\n"), "{text}");
        buf.push("line 5");
        buf.close();
        let (more, cursor, closed) = buf.since_cursor(cursor, false);
        assert_eq!((more.as_str(), cursor, closed), ("line 5\n", 6, true));
        let mut s = "héllo".to_string();
        truncate_bytes(&mut s, 2);
        assert_eq!(s, "h");
    }
}
