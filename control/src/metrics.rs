//! Control-plane metrics in the Prometheus text format (`GET /metrics`): tool calls by
//! tool and outcome with a latency histogram, HTTP auth failures by reason, connected
//! gateways, the route table. **No per-workspace or per-user labels.**

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::mcp::ALL_TOOLS;
use crate::publish::Publisher;

const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];
/// Tools not gated by permissions (always registered).
const ALWAYS: [&str; 3] = [
    "current_namespace",
    "check_permissions",
    "list_registry_images",
];
const OUTCOMES: [&str; 3] = ["ok", "tool_error", "protocol_error"];
const AUTH_REASONS: [&str; 12] = shared::auth::AuthError::CODES;

#[derive(Default)]
struct ToolStats {
    outcomes: [AtomicU64; 3],
    buckets: [AtomicU64; 10],
    sum_micros: AtomicU64,
}

pub struct ControlMetrics {
    names: Vec<&'static str>,
    tools: Vec<ToolStats>,
    auth_failures: [AtomicU64; 12],
}

impl Default for ControlMetrics {
    fn default() -> Self {
        let names: Vec<&'static str> = ALWAYS.iter().chain(ALL_TOOLS).copied().collect();
        let tools = names.iter().map(|_| ToolStats::default()).collect();
        ControlMetrics {
            names,
            tools,
            auth_failures: Default::default(),
        }
    }
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Ok,
    ToolError,
    ProtocolError,
}

impl ControlMetrics {
    /// One finished tool call (unknown tool names are not counted: the label set stays fixed).
    pub fn record_tool(&self, tool: &str, outcome: Outcome, elapsed: Duration) {
        let Some(i) = self.names.iter().position(|n| *n == tool) else {
            return;
        };
        let t = &self.tools[i];
        t.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        for (b, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                t.buckets[b].fetch_add(1, Ordering::Relaxed);
            }
        }
        t.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn record_auth_failure(&self, reason: &str) {
        if let Some(i) = AUTH_REASONS.iter().position(|r| *r == reason) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, publisher: Option<&Publisher>) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP nocrd9_tool_calls_total MCP tool calls by tool and outcome.\n# TYPE nocrd9_tool_calls_total counter"
        );
        for (name, t) in self.names.iter().zip(&self.tools) {
            for (o, outcome) in OUTCOMES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "nocrd9_tool_calls_total{{tool=\"{name}\",outcome=\"{outcome}\"}} {}",
                    load(&t.outcomes[o])
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP nocrd9_tool_call_duration_seconds Time to answer a tool call.\n# TYPE nocrd9_tool_call_duration_seconds histogram"
        );
        for (name, t) in self.names.iter().zip(&self.tools) {
            for (b, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "nocrd9_tool_call_duration_seconds_bucket{{tool=\"{name}\",le=\"{bound}\"}} {}",
                    load(&t.buckets[b])
                );
            }
            let count: u64 = t.outcomes.iter().map(load).sum();
            let _ = writeln!(
                out,
                "nocrd9_tool_call_duration_seconds_bucket{{tool=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "nocrd9_tool_call_duration_seconds_sum{{tool=\"{name}\"}} {}",
                load(&t.sum_micros) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "nocrd9_tool_call_duration_seconds_count{{tool=\"{name}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP nocrd9_auth_failures_total HTTP requests refused for their token, by reason.\n# TYPE nocrd9_auth_failures_total counter"
        );
        for (i, reason) in AUTH_REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "nocrd9_auth_failures_total{{reason=\"{reason}\"}} {}",
                load(&self.auth_failures[i])
            );
        }
        if let Some(p) = publisher {
            let table = p.table();
            let _ = writeln!(
                out,
                "# HELP nocrd9_routes Routes published to gateways.\n# TYPE nocrd9_routes gauge\nnocrd9_routes {}",
                table.len()
            );
            let _ = writeln!(
                out,
                "# HELP nocrd9_route_table_version Version of the published table.\n# TYPE nocrd9_route_table_version gauge\nnocrd9_route_table_version {}",
                table.version
            );
            let _ = writeln!(
                out,
                "# HELP nocrd9_gateways_connected Gateways connected to the route socket.\n# TYPE nocrd9_gateways_connected gauge\nnocrd9_gateways_connected {}",
                p.gateways().len()
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_tool_with_a_fixed_label_set() {
        let m = ControlMetrics::default();
        m.record_tool("list_pods", Outcome::Ok, Duration::from_millis(3));
        m.record_tool("list_pods", Outcome::ToolError, Duration::from_millis(30));
        m.record_tool("made_up_tool", Outcome::Ok, Duration::from_millis(1));
        m.record_auth_failure("expired_token");
        let text = m.render(None);
        assert!(text.contains("nocrd9_tool_calls_total{tool=\"list_pods\",outcome=\"ok\"} 1"));
        assert!(
            text.contains("nocrd9_tool_calls_total{tool=\"list_pods\",outcome=\"tool_error\"} 1")
        );
        assert!(text.contains(
            "nocrd9_tool_call_duration_seconds_bucket{tool=\"list_pods\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("nocrd9_tool_call_duration_seconds_count{tool=\"list_pods\"} 2"));
        assert!(text.contains("nocrd9_auth_failures_total{reason=\"expired_token\"} 1"));
        assert!(!text.contains("made_up_tool"));
    }
}
