//! Fault injection for reliability tests: set on the command line and switchable at run
//! time through `GET/PUT /sim/v1/faults`.

use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::status::{ApiError, Reason};

/// The faults in force. Every field has a harmless default, so a partial JSON document
/// can be PUT to the admin endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Added to every API request before it is handled.
    pub latency_ms: u64,
    /// Fraction (0..=1) of API requests answered with one of `error_codes`.
    pub error_rate: f64,
    /// Codes drawn from for injected errors: 500, 503 and/or 429 (429 and 503 carry
    /// `Retry-After`). Empty means all three.
    pub error_codes: Vec<u16>,
    /// Close every watch stream after this many seconds (0 = never).
    pub watch_close_after_secs: u64,
    /// Answer every watch that resumes from a resourceVersion with 410 Expired.
    pub expire_resumed_watches: bool,
    /// Delay before the simulated kubelet starts a new pod.
    pub pod_start_delay_ms: u64,
    /// Pods run but never report Ready.
    pub pods_never_ready: bool,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) || self.error_rate.is_nan() {
            return Err(format!(
                "errorRate must be between 0 and 1, got {}",
                self.error_rate
            ));
        }
        if let Some(bad) = self
            .error_codes
            .iter()
            .find(|c| ![429, 500, 503].contains(*c))
        {
            return Err(format!(
                "errorCodes may contain 429, 500 and 503 only, got {bad}"
            ));
        }
        Ok(())
    }
}

/// Shared, switchable fault settings.
#[derive(Debug, Default)]
pub struct FaultState {
    current: RwLock<Faults>,
}

impl FaultState {
    pub fn new(initial: Faults) -> Self {
        FaultState {
            current: RwLock::new(initial),
        }
    }

    pub fn get(&self) -> Faults {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = faults;
        Ok(())
    }

    /// Applies latency and maybe returns an injected error for one API request.
    pub async fn before_request(&self) -> Result<(), ApiError> {
        let f = self.get();
        if f.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
        }
        if f.error_rate > 0.0 && rand::random::<f64>() < f.error_rate {
            let codes: &[u16] = if f.error_codes.is_empty() {
                &[500, 503, 429]
            } else {
                &f.error_codes
            };
            let code = codes[rand::random_range(0..codes.len())];
            return Err(match code {
                429 => ApiError::too_many_requests(1),
                503 => {
                    let mut e = ApiError::new(
                        Reason::ServiceUnavailable,
                        "the server is currently unable to handle the request (injected by kube-sim)",
                    );
                    e.retry_after_seconds = Some(1);
                    e
                }
                _ => ApiError::internal("Internal error occurred: injected by kube-sim"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_field() {
        let f = Faults {
            error_rate: 1.5,
            ..Default::default()
        };
        assert!(f.validate().err().is_some_and(|e| e.contains("errorRate")));
        let f = Faults {
            error_codes: vec![404],
            ..Default::default()
        };
        assert!(f.validate().err().is_some_and(|e| e.contains("errorCodes")));
        let parsed: Result<Faults, _> = serde_json::from_str(r#"{"latencyMs": 5, "bogus": 1}"#);
        assert!(parsed.is_err());
    }

    #[tokio::test]
    async fn full_error_rate_always_fails_with_the_chosen_code() {
        let state = FaultState::new(Faults {
            error_rate: 1.0,
            error_codes: vec![429],
            ..Default::default()
        });
        for _ in 0..10 {
            let err = state.before_request().await.err().map(|e| e.status_code());
            assert_eq!(err, Some(429));
        }
        assert!(state.set(Faults::default()).is_ok());
        assert!(state.before_request().await.is_ok());
    }
}
