//! The access log: one JSON line per request on stderr, in the shape `tracing`'s JSON
//! formatter gave it (`timestamp`, `level`, `fields`, `target: "access"`), but formatted
//! by hand into a buffer and written in batches. Through `tracing` it cost ~27 µs of
//! the gateway's CPU per request (a formatter and an unbuffered `write` each); here it is
//! a few hundred nanoseconds and one `write` per 64 KiB or per 200 ms
//! (`shared::lines::LineWriter`).
//!
//! Lines are flushed by a background thread every [`FLUSH_EVERY`], when the buffer
//! passes 64 KiB, and once more when the server has stopped, before the process
//! exits, so a request answered during the shutdown grace period is still logged. What never goes in: the query string (it may hold a
//! token), headers and cookies.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared::lines::LineWriter;

/// At the latest, lines are written this long after the request ended.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

static LOG: OnceLock<Arc<LineWriter>> = OnceLock::new();

/// One request, as the access log reports it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub method: &'a str,
    pub workspace_id: &'a str,
    pub status: u16,
    pub error: &'a str,
    pub auth_reason: &'a str,
    pub upstream: Option<SocketAddr>,
    pub duration_ms: f64,
    pub bytes: usize,
    pub cause: &'a str,
}

/// Turns the access log on (once; later calls do nothing). [`crate::Gateway::run_forever`]
/// flushes once more before the process exits.
pub fn enable() {
    let _ = LOG.set(LineWriter::start(
        "access-log",
        Box::new(std::io::stderr()),
        FLUSH_EVERY,
    ));
}

pub fn enabled() -> bool {
    LOG.get().is_some()
}

/// Logs one request (nothing when the access log is off).
pub fn record(entry: &Entry<'_>) {
    let Some(log) = LOG.get() else {
        return;
    };
    thread_local! {
        static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
    }
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        format_line(&mut line, entry, SystemTime::now());
        log.line(&line);
    });
}

/// Writes what is buffered to stderr.
pub fn flush() {
    if let Some(log) = LOG.get() {
        log.flush();
    }
}

/// The line for `entry` at `now` (without its newline).
pub fn format_line(out: &mut String, e: &Entry<'_>, now: SystemTime) {
    out.push_str("{\"timestamp\":\"");
    rfc3339(out, now);
    out.push_str("\",\"level\":\"INFO\",\"fields\":{\"method\":\"");
    escape(out, e.method);
    out.push_str("\",\"workspace_id\":\"");
    escape(out, e.workspace_id);
    let _ = write!(out, "\",\"status\":{},\"error\":\"", e.status);
    escape(out, e.error);
    out.push_str("\",\"auth_reason\":\"");
    escape(out, e.auth_reason);
    out.push_str("\",\"upstream\":\"");
    match e.upstream {
        Some(a) => {
            let _ = write!(out, "{a}");
        }
        None => out.push('-'),
    }
    let _ = write!(
        out,
        "\",\"duration_ms\":{},\"bytes\":{},\"cause\":\"",
        finite(e.duration_ms),
        e.bytes
    );
    escape(out, e.cause);
    out.push_str("\"},\"target\":\"access\"}");
}

fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// JSON string content: quotes, backslashes and control characters escaped.
fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `2026-11-29T21:34:12.153608Z` (UTC, microseconds), as `tracing-subscriber` wrote it.
fn rfc3339(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = shared::time::civil_from_days(days as i64);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_json_tracing_wrote() {
        let mut line = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_795_988_052_153_608);
        format_line(
            &mut line,
            &Entry {
                method: "GET",
                workspace_id: "demo",
                status: 401,
                error: "unauthorized",
                auth_reason: "malformed_token",
                upstream: Some("10.0.0.7:3000".parse().unwrap_or_else(|e| panic!("{e}"))),
                duration_ms: 1.25,
                bytes: 93,
                cause: "-",
            },
            at,
        );
        assert!(!line.contains('\n'), "one line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["timestamp"], "2026-11-29T21:34:12.153608Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "access");
        let f = &v["fields"];
        assert_eq!(f["method"], "GET");
        assert_eq!(f["workspace_id"], "demo");
        assert_eq!(f["status"], 401);
        assert_eq!(f["error"], "unauthorized");
        assert_eq!(f["auth_reason"], "malformed_token");
        assert_eq!(f["upstream"], "10.0.0.7:3000");
        assert_eq!(f["duration_ms"], 1.25);
        assert_eq!(f["bytes"], 93);
    }

    #[test]
    fn strings_are_escaped_and_dates_are_right() {
        let mut s = String::new();
        escape(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, "a\\\"b\\\\c\\u000ad\\u0001");
        let mut t = String::new();
        rfc3339(
            &mut t,
            UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661),
        );
        assert_eq!(t, "2000-02-29T01:01:01.000000Z");
    }
}
