//! Gateway metrics through the `prometheus` crate. Built once and shared by `Arc`, so
//! tests read the counters directly. Every labelled series is resolved once at start, so
//! recording on the hot path is an atomic add (no label lookup, no lock).
//! **No per-workspace or per-user labels.**

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::reject::Reject;
use crate::store::RouteStore;
use crate::sync::SyncStatus;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const CLASSES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

pub struct GatewayMetrics {
    registry: Registry,
    proxied: IntCounter,
    /// Indexed like `Reject::ALL`.
    rejected: Vec<IntCounter>,
    /// Indexed like `AuthError::CODES`.
    auth_failures: Vec<IntCounter>,
    auth_cached: IntCounter,
    auth_verified: IntCounter,
    /// Indexed by status / 100 (capped at 5).
    by_class: Vec<IntCounter>,
    duration: Histogram,
    upstream_reused: IntCounter,
    upstream_new: IntCounter,
    table_size: IntGauge,
    table_version: IntGauge,
    /// Upgraded connections (WebSockets) carried by their own copy loop now.
    tunnels_open: IntGauge,
    sync_connected: IntGauge,
    sync_staleness: Gauge,
}

/// One counter per label value, resolved now.
fn counters(
    vec: &IntCounterVec,
    values: impl IntoIterator<Item = &'static str>,
) -> Vec<IntCounter> {
    values
        .into_iter()
        .map(|v| vec.with_label_values(&[v]))
        .collect()
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    // Names are fixed and unique in this module: registering cannot fail.
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric"))
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new("nocrd9_gateway_requests_total", "Requests by outcome."),
                &["outcome"],
            )
            .expect("valid metric"),
        );
        let responses = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "nocrd9_gateway_responses_total",
                    "Responses by status class.",
                ),
                &["class"],
            )
            .expect("valid metric"),
        );
        let upstream = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "nocrd9_gateway_upstream_connections_total",
                    "Upstream connections used, new or reused from the pool.",
                ),
                &["reused"],
            )
            .expect("valid metric"),
        );
        let auth_failures = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "nocrd9_gateway_auth_failures_total",
                    "Tokens refused, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
        );
        let auth_accepted = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "nocrd9_gateway_auth_accepted_total",
                    "Tokens accepted: from the verified-token cache, or verified now.",
                ),
                &["cached"],
            )
            .expect("valid metric"),
        );
        let duration = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "nocrd9_gateway_request_duration_seconds",
                    "Time from request to logged response.",
                )
                .buckets(BUCKETS.to_vec()),
            )
            .expect("valid metric"),
        );
        let sync_staleness = register(
            &registry,
            Gauge::new(
                "nocrd9_gateway_sync_staleness_seconds",
                "Seconds since control was last heard from (-1 before first contact).",
            )
            .expect("valid metric"),
        );
        GatewayMetrics {
            proxied: requests.with_label_values(&["proxied"]),
            rejected: counters(&requests, Reject::ALL.iter().map(|r| r.reason())),
            auth_failures: counters(&auth_failures, shared::auth::AuthError::CODES),
            auth_cached: auth_accepted.with_label_values(&["true"]),
            auth_verified: auth_accepted.with_label_values(&["false"]),
            by_class: counters(&responses, CLASSES),
            duration,
            upstream_reused: upstream.with_label_values(&["true"]),
            upstream_new: upstream.with_label_values(&["false"]),
            table_size: gauge(
                &registry,
                "nocrd9_gateway_route_table_size",
                "Routes in the table.",
            ),
            tunnels_open: gauge(
                &registry,
                "nocrd9_gateway_tunnels_open",
                "Upgraded connections (WebSockets) open now.",
            ),
            table_version: gauge(
                &registry,
                "nocrd9_gateway_route_table_version",
                "Version of the table (resets with the epoch).",
            ),
            sync_connected: gauge(
                &registry,
                "nocrd9_gateway_sync_connected",
                "Whether the route feed is connected.",
            ),
            sync_staleness,
            registry,
        }
    }

    /// Registers the route feed's own counters (applied, resyncs) for exposition.
    pub fn register_sync(&self, sync: &SyncStatus) {
        for c in sync.counters() {
            let _ = self.registry.register(Box::new(c));
        }
    }

    /// Records one finished request.
    pub fn record(&self, status: u16, reject: Option<Reject>, elapsed: Duration) {
        match reject.and_then(|r| Reject::ALL.iter().position(|x| *x == r)) {
            Some(i) => self.rejected[i].inc(),
            None => self.proxied.inc(),
        }
        self.by_class[usize::from(status / 100).min(5)].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// A token refused, by reason (`AuthError::code`).
    pub fn record_auth_failure(&self, reason: &str) {
        if let Some(i) = shared::auth::AuthError::CODES
            .iter()
            .position(|r| *r == reason)
        {
            self.auth_failures[i].inc();
        }
    }

    /// A token accepted: from the cache, or verified now.
    pub fn record_auth_success(&self, cached: bool) {
        if cached {
            self.auth_cached.inc()
        } else {
            self.auth_verified.inc()
        }
    }

    pub fn auth_failures(&self, reason: &str) -> u64 {
        shared::auth::AuthError::CODES
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.auth_failures[i].get())
    }

    /// An upgraded connection moved to its copy loop; `false`: one closed.
    pub fn record_tunnel(&self, opened: bool) {
        if opened {
            self.tunnels_open.inc();
        } else {
            self.tunnels_open.dec();
        }
    }

    pub fn tunnels_open(&self) -> i64 {
        self.tunnels_open.get()
    }

    pub fn record_upstream_connection(&self, reused: bool) {
        if reused {
            self.upstream_reused.inc()
        } else {
            self.upstream_new.inc()
        }
    }

    pub fn proxied(&self) -> u64 {
        self.proxied.get()
    }

    pub fn rejected(&self, r: Reject) -> u64 {
        Reject::ALL
            .iter()
            .position(|x| *x == r)
            .map_or(0, |i| self.rejected[i].get())
    }

    /// New and reused upstream connections so far.
    pub fn upstream_connections(&self) -> (u64, u64) {
        (self.upstream_new.get(), self.upstream_reused.get())
    }

    /// The exposition text.
    pub fn render(&self, store: &RouteStore, sync: &SyncStatus) -> String {
        let table = store.load();
        self.table_size.set(table.len() as i64);
        self.table_version.set(table.version() as i64);
        self.sync_connected.set(i64::from(sync.connected()));
        self.sync_staleness
            .set(sync.staleness_ms().map_or(-1.0, |ms| ms as f64 / 1000.0));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_and_has_no_workspace_labels() {
        let m = GatewayMetrics::new();
        let sync = SyncStatus::default();
        m.register_sync(&sync);
        m.record(200, None, Duration::from_millis(2));
        m.record(
            404,
            Some(Reject::WorkspaceNotFound),
            Duration::from_micros(100),
        );
        let text = m.render(&RouteStore::default(), &sync);
        assert!(
            text.contains("nocrd9_gateway_requests_total{outcome=\"proxied\"} 1"),
            "{text}"
        );
        assert!(text.contains("nocrd9_gateway_requests_total{outcome=\"workspace_not_found\"} 1"));
        assert!(
            text.contains("nocrd9_gateway_requests_total{outcome=\"forbidden\"} 0"),
            "every outcome is listed"
        );
        assert!(text.contains("nocrd9_gateway_responses_total{class=\"4xx\"} 1"));
        assert!(text.contains("nocrd9_gateway_request_duration_seconds_bucket{le=\"0.0025\"} 2"));
        assert!(text.contains("nocrd9_gateway_request_duration_seconds_count 2"));
        assert!(
            text.contains("nocrd9_gateway_sync_applied_total 0"),
            "{text}"
        );
        assert!(text.contains("nocrd9_gateway_sync_staleness_seconds -1"));
        assert!(
            !text.contains("workspace_id=") && !text.contains("sub="),
            "no per-workspace or per-user labels"
        );
    }
}
