//! `ws-hold`: the load harness's WebSocket client. Opens `--connections` WebSockets spread
//! over the given URLs (at most `--connect-rate` new ones a second), holds them for
//! `--hold-secs`, sends a text frame on each every `--interval-secs` and expects it echoed
//! back, then closes them all and prints one JSON line: how many opened, how many failed
//! to open, frames sent and echoed, and how many connections dropped before the end.
//! Bounded: it stops by itself after connect time + hold time + 30 s, whatever happens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[derive(Parser, Clone)]
#[command(
    about = "Hold many WebSocket connections open through a proxy, with periodic echoed frames"
)]
struct Args {
    /// WebSocket URLs (ws://…); connection i goes to URL i mod count.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Bearer token per URL (same order), or one for all; none when omitted.
    #[arg(long = "token")]
    tokens: Vec<String>,
    #[arg(long, default_value_t = 5000)]
    connections: u32,
    #[arg(long, default_value_t = 60)]
    hold_secs: u64,
    #[arg(long, default_value_t = 5)]
    interval_secs: u64,
    /// New connections per second while opening.
    #[arg(long, default_value_t = 1000)]
    connect_rate: u32,
}

#[derive(Default)]
struct Counts {
    opened: AtomicU64,
    open_failed: AtomicU64,
    sent: AtomicU64,
    echoed: AtomicU64,
    dropped: AtomicU64,
    closed_cleanly: AtomicU64,
}

async fn hold(
    url: String,
    token: Option<String>,
    until: Instant,
    interval: Duration,
    counts: Arc<Counts>,
) -> Option<String> {
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            counts.open_failed.fetch_add(1, Ordering::Relaxed);
            return Some(format!("{url}: {e}"));
        }
    };
    if let Some(t) = token
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
    {
        request.headers_mut().insert("authorization", v);
    }
    let connect = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await;
    let mut ws = match connect {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            counts.open_failed.fetch_add(1, Ordering::Relaxed);
            return Some(format!("open {url}: {e}"));
        }
        Err(_) => {
            counts.open_failed.fetch_add(1, Ordering::Relaxed);
            return Some(format!("open {url}: timed out after 10 s"));
        }
    };
    counts.opened.fetch_add(1, Ordering::Relaxed);
    let opened_at = Instant::now();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        seq += 1;
        let payload = format!("ping {seq}");
        if let Err(e) = ws.send(Message::text(payload.clone())).await {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            return Some(format!(
                "sending frame {seq}, {:.1} s after opening: {e}",
                opened_at.elapsed().as_secs_f64()
            ));
        }
        counts.sent.fetch_add(1, Ordering::Relaxed);
        // The echo must come back within the interval.
        let echo = tokio::time::timeout(interval.max(Duration::from_secs(1)), async {
            while let Some(m) = ws.next().await {
                match m {
                    Ok(Message::Text(t)) if t.as_str() == payload => return Ok(()),
                    Ok(Message::Close(_)) => return Err("closed by the far end".to_string()),
                    Ok(_) => continue,
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err("stream ended".to_string())
        })
        .await;
        match echo {
            Ok(Ok(())) => {
                counts.echoed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                return Some(format!(
                    "frame {seq}, {:.1} s after opening: {e}",
                    opened_at.elapsed().as_secs_f64()
                ));
            }
            Err(_) => {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                return Some(format!(
                    "frame {seq}, {:.1} s after opening: no echo within the interval",
                    opened_at.elapsed().as_secs_f64()
                ));
            }
        }
        let next = (Instant::now() + interval).min(until);
        tokio::time::sleep_until(next.into()).await;
    }
    if ws.close(None).await.is_ok() {
        counts.closed_cleanly.fetch_add(1, Ordering::Relaxed);
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::process::ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if !args.tokens.is_empty() && args.tokens.len() != 1 && args.tokens.len() != args.urls.len() {
        eprintln!(
            "ws-hold: give one --token, or one per --url ({} URLs, {} tokens)",
            args.urls.len(),
            args.tokens.len()
        );
        return std::process::ExitCode::from(2);
    }
    if args.connect_rate == 0 || args.interval_secs == 0 {
        eprintln!("ws-hold: --connect-rate and --interval-secs must be at least 1");
        return std::process::ExitCode::from(2);
    }
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let open_time =
        Duration::from_secs_f64(f64::from(args.connections) / f64::from(args.connect_rate));
    let until = started + open_time + Duration::from_secs(args.hold_secs);
    let deadline = until + Duration::from_secs(30);
    let mut tasks = tokio::task::JoinSet::new();
    let pace = Duration::from_secs_f64(1.0 / f64::from(args.connect_rate));
    for i in 0..args.connections as usize {
        let url = args.urls[i % args.urls.len()].clone();
        let token = match args.tokens.len() {
            0 => None,
            1 => Some(args.tokens[0].clone()),
            _ => Some(args.tokens[i % args.urls.len()].clone()),
        };
        tasks.spawn(hold(
            url,
            token,
            until,
            Duration::from_secs(args.interval_secs),
            counts.clone(),
        ));
        tokio::time::sleep_until((started + pace * (i as u32 + 1)).into()).await;
    }
    let mut errors = Vec::new();
    let finished = tokio::time::timeout_at(deadline.into(), async {
        while let Some(r) = tasks.join_next().await {
            if let Ok(Some(e)) = r
                && errors.len() < 10
            {
                errors.push(e);
            }
        }
    })
    .await;
    let report = serde_json::json!({
        "connections": args.connections,
        "opened": counts.opened.load(Ordering::Relaxed),
        "open_failed": counts.open_failed.load(Ordering::Relaxed),
        "frames_sent": counts.sent.load(Ordering::Relaxed),
        "frames_echoed": counts.echoed.load(Ordering::Relaxed),
        "dropped": counts.dropped.load(Ordering::Relaxed),
        "closed_cleanly": counts.closed_cleanly.load(Ordering::Relaxed),
        "timed_out": finished.is_err(),
        "seconds": started.elapsed().as_secs_f64(),
        "first_errors": errors,
    });
    println!("{report}");
    std::process::ExitCode::SUCCESS
}
