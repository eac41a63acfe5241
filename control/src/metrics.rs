//! Control-plane metrics through the `prometheus` crate (`GET /metrics`): tool calls by
//! tool and outcome with a latency histogram, HTTP auth failures by reason, connected
//! gateways, the route table. The tool label set is the catalogue, fixed at start.
//! **No per-workspace or per-user labels.**

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::publish::Publisher;

const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// How a tool call ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Ok,
    ToolError,
    ProtocolError,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::ToolError, Outcome::ProtocolError];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::ProtocolError => "protocol_error",
        }
    }
}

pub struct ControlMetrics {
    registry: Registry,
    tool_calls: IntCounterVec,
    tool_duration: HistogramVec,
    auth_failures: IntCounterVec,
    routes: IntGauge,
    table_version: IntGauge,
    gateways: IntGauge,
    culled: prometheus::IntCounter,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    // Names are fixed and unique in this module: registering cannot fail.
    let _ = registry.register(Box::new(c.clone()));
    c
}

impl Default for ControlMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        let tool_calls = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "nocrd9_tool_calls_total",
                    "MCP tool calls by tool and outcome.",
                ),
                &["tool", "outcome"],
            )
            .expect("valid metric"),
        );
        let tool_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "nocrd9_tool_call_duration_seconds",
                    "Time to answer a tool call.",
                )
                .buckets(BUCKETS.to_vec()),
                &["tool"],
            )
            .expect("valid metric"),
        );
        let auth_failures = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "nocrd9_auth_failures_total",
                    "HTTP requests refused for their token, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
        );
        // Every series exists from the start, at zero.
        for tool in crate::tools::names() {
            for outcome in Outcome::ALL {
                tool_calls.with_label_values(&[tool, outcome.label()]);
            }
            tool_duration.with_label_values(&[tool]);
        }
        for reason in shared::auth::AuthError::CODES {
            auth_failures.with_label_values(&[reason]);
        }
        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        ControlMetrics {
            routes: gauge("nocrd9_routes", "Routes published to gateways."),
            table_version: gauge(
                "nocrd9_route_table_version",
                "Version of the published table.",
            ),
            gateways: gauge(
                "nocrd9_gateways_connected",
                "Gateways connected to the route socket.",
            ),
            culled: register(
                &registry,
                prometheus::IntCounter::new(
                    "nocrd9_workspaces_stopped_by_lifecycle_total",
                    "Workspaces this replica stopped for idleness or their maximum lifetime.",
                )
                .expect("valid metric"),
            ),
            registry,
            tool_calls,
            tool_duration,
            auth_failures,
        }
    }
}

impl ControlMetrics {
    /// One finished tool call (names outside the catalogue are not counted: the label
    /// set stays fixed whatever clients send).
    pub fn record_tool(&self, tool: &str, outcome: Outcome, elapsed: Duration) {
        let Some(tool) = crate::tools::find(tool) else {
            return;
        };
        self.tool_calls
            .with_label_values(&[tool.name, outcome.label()])
            .inc();
        self.tool_duration
            .with_label_values(&[tool.name])
            .observe(elapsed.as_secs_f64());
    }

    /// A workspace stopped by the culler.
    pub fn record_culled(&self) {
        self.culled.inc();
    }

    pub fn record_auth_failure(&self, reason: &str) {
        if let Some(reason) = shared::auth::AuthError::CODES
            .iter()
            .find(|r| **r == reason)
        {
            self.auth_failures.with_label_values(&[reason]).inc();
        }
    }

    pub fn render(&self, publisher: Option<&Publisher>) -> String {
        if let Some(p) = publisher {
            let table = p.table();
            self.routes.set(table.len() as i64);
            self.table_version.set(table.version() as i64);
            self.gateways.set(p.gateways().len() as i64);
        }
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
    fn calls_are_counted_per_tool_with_a_fixed_label_set() {
        let m = ControlMetrics::default();
        m.record_tool("list_pods", Outcome::Ok, Duration::from_millis(3));
        m.record_tool("list_pods", Outcome::ToolError, Duration::from_millis(30));
        m.record_tool("made_up_tool", Outcome::Ok, Duration::from_millis(1));
        m.record_auth_failure("expired_token");
        m.record_auth_failure("made_up_reason");
        let text = m.render(None);
        assert!(
            text.contains("nocrd9_tool_calls_total{outcome=\"ok\",tool=\"list_pods\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nocrd9_tool_calls_total{outcome=\"tool_error\",tool=\"list_pods\"} 1")
        );
        assert!(
            text.contains("nocrd9_tool_calls_total{outcome=\"ok\",tool=\"spawn_workspace\"} 0"),
            "every catalogue tool is listed from the start"
        );
        assert!(text.contains(
            "nocrd9_tool_call_duration_seconds_bucket{tool=\"list_pods\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("nocrd9_tool_call_duration_seconds_count{tool=\"list_pods\"} 2"));
        assert!(text.contains("nocrd9_auth_failures_total{reason=\"expired_token\"} 1"));
        assert!(!text.contains("made_up"));
    }
}
