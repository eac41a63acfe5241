//! When a workspace ends by itself. Pure: the culler (`culler.rs`) feeds it what it
//! knows about a pod and acts on the verdict.
//!
//! A workspace's policy comes from its pod's annotations (copied from its template) with
//! the server's defaults underneath: `nogoo9/idle-timeout` (no traffic through any
//! gateway and no `keepalive_workspace` for that long), `nogoo9/max-lifetime` (a hard cap
//! from its start, whatever the activity) and `nogoo9/idle-action` (`delete`, the
//! default, or `suspend`: see `suspend.rs`).
//! Durations read like `90s`, `30m`, `2h`, `1h30m` or plain seconds.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use shared::names;

/// The server's defaults (`--default-idle-timeout`, `--default-max-lifetime`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defaults {
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
}

/// What idleness does to a workspace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdleAction {
    /// Stop it: pod, id and files go.
    #[default]
    Delete,
    /// Suspend it: the pod goes; id, files and spawn record stay (`suspend.rs`).
    Suspend,
}

/// One workspace's lifecycle policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub action: IdleAction,
}

/// Why a workspace is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No activity for this long.
    Idle(Duration),
    /// Older than its maximum lifetime.
    Expired(Duration),
}

impl Reason {
    /// The Kubernetes event reason.
    pub fn event_reason(self) -> &'static str {
        match self {
            Reason::Idle(_) => "Culled",
            Reason::Expired(_) => "Expired",
        }
    }

    pub fn describe(self) -> String {
        match self {
            Reason::Idle(d) => format!("stopped after {} without activity", human(d)),
            Reason::Expired(d) => format!("stopped at its maximum lifetime of {}", human(d)),
        }
    }
}

/// What happens to a workspace now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It stays; when it would be culled for idleness and when it expires, if ever.
    Keep {
        cull_at: Option<SystemTime>,
        expires_at: Option<SystemTime>,
    },
    Stop(Reason),
}

impl Policy {
    /// The policy in `annotations`, over `defaults`; a malformed value is an error naming
    /// the annotation.
    pub fn of(
        annotations: &BTreeMap<String, String>,
        defaults: Defaults,
    ) -> Result<Policy, String> {
        let duration = |name: &str| -> Result<Option<Duration>, String> {
            annotations
                .get(name)
                .map(|v| parse_duration(v).map_err(|why| format!("annotation {name}: {why}")))
                .transpose()
        };
        let action = match annotations
            .get(names::IDLE_ACTION_ANNOTATION)
            .map(String::as_str)
        {
            None | Some("delete") => IdleAction::Delete,
            Some("suspend") => IdleAction::Suspend,
            Some(other) => {
                return Err(format!(
                    "annotation {} must be \"delete\" or \"suspend\", got {other:?}",
                    names::IDLE_ACTION_ANNOTATION
                ));
            }
        };
        Ok(Policy {
            idle_timeout: duration(names::IDLE_TIMEOUT_ANNOTATION)?.or(defaults.idle_timeout),
            max_lifetime: duration(names::MAX_LIFETIME_ANNOTATION)?.or(defaults.max_lifetime),
            action,
        })
    }

    /// Whether this policy ever stops a workspace by itself.
    pub fn is_bounded(&self) -> bool {
        self.idle_timeout.is_some() || self.max_lifetime.is_some()
    }

    /// The verdict at `now` for a workspace that started at `started` and was last
    /// active at `last_active`. `slack` is how late activity may be known here (reports
    /// from other replicas' gateways arrive through pod annotations): idleness counts
    /// only beyond `idle_timeout + slack`, so traffic through any gateway is never cut.
    pub fn decide(
        &self,
        started: SystemTime,
        last_active: SystemTime,
        now: SystemTime,
        slack: Duration,
    ) -> Verdict {
        let last_active = last_active.max(started);
        let expires_at = self.max_lifetime.map(|m| started + m);
        if let (Some(at), Some(m)) = (expires_at, self.max_lifetime)
            && now >= at
        {
            return Verdict::Stop(Reason::Expired(m));
        }
        let cull_at = self.idle_timeout.map(|t| last_active + t + slack);
        if let (Some(at), Some(t)) = (cull_at, self.idle_timeout)
            && now >= at
        {
            return Verdict::Stop(Reason::Idle(t));
        }
        Verdict::Keep {
            cull_at,
            expires_at,
        }
    }
}

pub use shared::duration::parse as parse_duration;

/// `1h30m`, `45s`: the short form the annotations use.
pub fn human(d: Duration) -> String {
    let mut s = d.as_secs();
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn durations_are_written_short() {
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(2)), "2s");
    }

    #[test]
    fn annotations_override_the_defaults_and_bad_values_are_named() {
        let defaults = Defaults {
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: None,
        };
        let p = Policy::of(
            &ann(&[("nogoo9/idle-timeout", "2s"), ("nogoo9/max-lifetime", "1h")]),
            defaults,
        )
        .unwrap_or_default();
        assert_eq!(p.idle_timeout, Some(Duration::from_secs(2)));
        assert_eq!(p.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(
            Policy::of(&ann(&[]), defaults).map(|p| p.idle_timeout),
            Ok(Some(Duration::from_secs(600)))
        );
        let e = Policy::of(&ann(&[("nogoo9/idle-timeout", "soon")]), defaults).expect_err("bad");
        assert!(e.starts_with("annotation nogoo9/idle-timeout:"), "{e}");
        let p = Policy::of(&ann(&[("nogoo9/idle-action", "suspend")]), defaults);
        assert_eq!(p.map(|p| p.action), Ok(IdleAction::Suspend));
        let e = Policy::of(&ann(&[("nogoo9/idle-action", "hibernate")]), defaults)
            .expect_err("unknown action");
        assert!(e.contains("must be \"delete\" or \"suspend\""), "{e}");
        assert!(Policy::of(&ann(&[("nogoo9/idle-action", "delete")]), defaults).is_ok());
        assert!(!Policy::default().is_bounded());
    }

    #[test]
    fn idleness_counts_from_the_last_activity_with_slack_and_lifetime_from_the_start() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Duration::from_secs;
        let p = Policy {
            idle_timeout: Some(s(60)),
            max_lifetime: Some(s(3600)),
            action: IdleAction::Delete,
        };
        let slack = s(5);
        assert_eq!(
            p.decide(t0, t0 + s(100), t0 + s(164), slack),
            Verdict::Keep {
                cull_at: Some(t0 + s(165)),
                expires_at: Some(t0 + s(3600))
            }
        );
        assert_eq!(
            p.decide(t0, t0 + s(100), t0 + s(165), slack),
            Verdict::Stop(Reason::Idle(s(60)))
        );
        // Activity never extends the lifetime.
        assert_eq!(
            p.decide(t0, t0 + s(3599), t0 + s(3600), slack),
            Verdict::Stop(Reason::Expired(s(3600)))
        );
        // Activity recorded before the start (clock skew) counts from the start.
        assert_eq!(
            p.decide(t0, t0 - s(500), t0 + s(10), slack),
            Verdict::Keep {
                cull_at: Some(t0 + s(65)),
                expires_at: Some(t0 + s(3600))
            }
        );
        assert_eq!(
            Policy::default().decide(t0, t0, t0 + s(1_000_000), slack),
            Verdict::Keep {
                cull_at: None,
                expires_at: None
            }
        );
    }
}
