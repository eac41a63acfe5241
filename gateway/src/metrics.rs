//! Gateway metrics in the Prometheus text format. Built once and shared by `Arc`, so
//! tests read the counters directly. **No per-workspace or per-user labels.**

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::reject::Reject;
use crate::store::RouteStore;
use crate::sync::SyncStatus;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

const REJECTS: [Reject; 13] = Reject::ALL;
const AUTH_REASONS: [&str; 12] = shared::auth::AuthError::CODES;

#[derive(Debug, Default)]
pub struct GatewayMetrics {
    proxied: AtomicU64,
    rejected: [AtomicU64; 13],
    auth_failures: [AtomicU64; 12],
    auth_cache_hits: AtomicU64,
    auth_verified: AtomicU64,
    by_class: [AtomicU64; 6],
    buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    upstream_reused: AtomicU64,
    upstream_new: AtomicU64,
}

impl GatewayMetrics {
    /// Records one finished request.
    pub fn record(&self, status: u16, reject: Option<Reject>, elapsed: Duration) {
        match reject {
            Some(r) => {
                if let Some(i) = REJECTS.iter().position(|x| *x == r) {
                    self.rejected[i].fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.proxied.fetch_add(1, Ordering::Relaxed);
            }
        }
        let class = usize::from(status / 100).min(5);
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// A token refused, by reason (`AuthError::code`).
    pub fn record_auth_failure(&self, reason: &str) {
        if let Some(i) = AUTH_REASONS.iter().position(|r| *r == reason) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A token accepted: from the cache, or verified now.
    pub fn record_auth_success(&self, cached: bool) {
        let c = if cached {
            &self.auth_cache_hits
        } else {
            &self.auth_verified
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn auth_failures(&self, reason: &str) -> u64 {
        AUTH_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.auth_failures[i].load(Ordering::Relaxed))
    }

    pub fn record_upstream_connection(&self, reused: bool) {
        let c = if reused {
            &self.upstream_reused
        } else {
            &self.upstream_new
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn proxied(&self) -> u64 {
        self.proxied.load(Ordering::Relaxed)
    }

    pub fn rejected(&self, r: Reject) -> u64 {
        REJECTS
            .iter()
            .position(|x| *x == r)
            .map_or(0, |i| self.rejected[i].load(Ordering::Relaxed))
    }

    /// The exposition text.
    pub fn render(&self, store: &RouteStore, sync: &SyncStatus) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_requests_total Requests by outcome.\n# TYPE nocrd9_gateway_requests_total counter"
        );
        let _ = writeln!(
            out,
            "nocrd9_gateway_requests_total{{outcome=\"proxied\"}} {}",
            load(&self.proxied)
        );
        for (i, r) in REJECTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "nocrd9_gateway_requests_total{{outcome=\"{}\"}} {}",
                r.code(),
                load(&self.rejected[i])
            );
        }
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_responses_total Responses by status class.\n# TYPE nocrd9_gateway_responses_total counter"
        );
        for (i, class) in ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .enumerate()
        {
            let _ = writeln!(
                out,
                "nocrd9_gateway_responses_total{{class=\"{class}\"}} {}",
                load(&self.by_class[i])
            );
        }
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_request_duration_seconds Time from request to logged response.\n# TYPE nocrd9_gateway_request_duration_seconds histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "nocrd9_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(&self.buckets[i])
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "nocrd9_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "nocrd9_gateway_request_duration_seconds_sum {}",
            load(&self.latency_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "nocrd9_gateway_request_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_upstream_connections_total Upstream connections used, new or reused from the pool.\n# TYPE nocrd9_gateway_upstream_connections_total counter"
        );
        let _ = writeln!(
            out,
            "nocrd9_gateway_upstream_connections_total{{reused=\"true\"}} {}",
            load(&self.upstream_reused)
        );
        let _ = writeln!(
            out,
            "nocrd9_gateway_upstream_connections_total{{reused=\"false\"}} {}",
            load(&self.upstream_new)
        );
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_auth_failures_total Tokens refused, by reason.\n# TYPE nocrd9_gateway_auth_failures_total counter"
        );
        for (i, reason) in AUTH_REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "nocrd9_gateway_auth_failures_total{{reason=\"{reason}\"}} {}",
                load(&self.auth_failures[i])
            );
        }
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_auth_accepted_total Tokens accepted: from the verified-token cache, or verified now.\n# TYPE nocrd9_gateway_auth_accepted_total counter\nnocrd9_gateway_auth_accepted_total{{cached=\"true\"}} {}\nnocrd9_gateway_auth_accepted_total{{cached=\"false\"}} {}",
            load(&self.auth_cache_hits),
            load(&self.auth_verified)
        );
        let table = store.load();
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_route_table_size Routes in the table.\n# TYPE nocrd9_gateway_route_table_size gauge\nnocrd9_gateway_route_table_size {}",
            table.len()
        );
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_route_table_version Version of the table (resets with the epoch).\n# TYPE nocrd9_gateway_route_table_version gauge\nnocrd9_gateway_route_table_version {}",
            table.version
        );
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_sync_connected Whether the route feed is connected.\n# TYPE nocrd9_gateway_sync_connected gauge\nnocrd9_gateway_sync_connected {}",
            u8::from(sync.connected())
        );
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_sync_staleness_seconds Seconds since control was last heard from (-1 before first contact).\n# TYPE nocrd9_gateway_sync_staleness_seconds gauge"
        );
        let staleness = sync.staleness_ms().map_or(-1.0, |ms| ms as f64 / 1000.0);
        let _ = writeln!(out, "nocrd9_gateway_sync_staleness_seconds {staleness}");
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_sync_applied_total Snapshots and deltas applied.\n# TYPE nocrd9_gateway_sync_applied_total counter\nnocrd9_gateway_sync_applied_total {}",
            sync.applied()
        );
        let _ = writeln!(
            out,
            "# HELP nocrd9_gateway_sync_resyncs_total Deltas refused for not following the table.\n# TYPE nocrd9_gateway_sync_resyncs_total counter\nnocrd9_gateway_sync_resyncs_total {}",
            sync.resyncs()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_and_has_no_workspace_labels() {
        let m = GatewayMetrics::default();
        m.record(200, None, Duration::from_millis(2));
        m.record(
            404,
            Some(Reject::WorkspaceNotFound),
            Duration::from_micros(100),
        );
        let text = m.render(&RouteStore::default(), &SyncStatus::default());
        assert!(text.contains("nocrd9_gateway_requests_total{outcome=\"proxied\"} 1"));
        assert!(text.contains("nocrd9_gateway_requests_total{outcome=\"workspace_not_found\"} 1"));
        assert!(text.contains("nocrd9_gateway_responses_total{class=\"4xx\"} 1"));
        assert!(text.contains("nocrd9_gateway_request_duration_seconds_bucket{le=\"0.0025\"} 2"));
        assert!(text.contains("nocrd9_gateway_request_duration_seconds_count 2"));
        assert!(
            !text.contains("workspace_id=") && !text.contains("sub="),
            "no per-workspace or per-user labels"
        );
    }
}
