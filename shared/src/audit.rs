//! The audit trail (`--audit-log PATH`, `-` for stderr): one JSON line per MCP tool call
//! (control) and per proxied session (gateway), appended to a file opened `0600`. What
//! it must never hold: a token, a context value. Arguments pass through [`redact`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::lines::LineWriter;

/// Lines reach the file at most this long after the event.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// What stands in for a redacted value.
pub const REDACTED: &str = "[redacted]";

/// An open audit trail (cheap to clone).
#[derive(Clone)]
pub struct AuditLog {
    lines: Arc<LineWriter>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// Opens `path` for appending (created `0600`), or stderr for `-`.
    pub fn open(path: &str) -> std::io::Result<AuditLog> {
        let sink: crate::lines::Sink = if path == "-" {
            Box::new(std::io::stderr())
        } else {
            use std::os::unix::fs::OpenOptionsExt;
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)?,
            )
        };
        Ok(AuditLog {
            lines: LineWriter::start("audit-log", sink, FLUSH_EVERY),
        })
    }

    /// Appends one record (`type` and `time` are added).
    pub fn record(&self, kind: &str, mut fields: Map<String, Value>) {
        let mut line = Map::new();
        line.insert("time".into(), Value::String(crate::time::rfc3339_now()));
        line.insert("type".into(), Value::String(kind.into()));
        line.append(&mut fields);
        self.lines.line(&Value::Object(line).to_string());
    }

    /// Writes what is buffered (at shutdown).
    pub fn flush(&self) {
        self.lines.flush();
    }
}

/// Tool arguments as the audit trail may keep them: every value under `context` (it may
/// hold secrets the owner passes to the workspace), every field whose name says it is a
/// credential, and every string that looks like a JWT, replaced by [`REDACTED`].
pub fn redact(args: &Value) -> Value {
    fn credential(key: &str) -> bool {
        let k = key.to_ascii_lowercase();
        [
            "token",
            "password",
            "secret",
            "jwt",
            "authorization",
            "credential",
            "apikey",
            "api_key",
        ]
        .iter()
        .any(|c| k.contains(c))
    }
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let kept = if k == "context" {
                            match v {
                                Value::Object(ctx) => Value::Object(
                                    ctx.keys()
                                        .map(|k| (k.clone(), Value::String(REDACTED.into())))
                                        .collect(),
                                ),
                                _ => Value::String(REDACTED.into()),
                            }
                        } else if credential(k) {
                            Value::String(REDACTED.into())
                        } else {
                            walk(v)
                        };
                        (k.clone(), kept)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(walk).collect()),
            Value::String(s) if looks_like_jwt(s) => Value::String(REDACTED.into()),
            other => other.clone(),
        }
    }
    walk(args)
}

/// Three base64url parts, the first a JSON object (`eyJ…`): a JWT, wherever it is.
fn looks_like_jwt(s: &str) -> bool {
    s.split(|c: char| c.is_whitespace() || c == '=' || c == '&')
        .any(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && w.starts_with("eyJ")
                && parts.iter().take(2).all(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn context_values_tokens_and_jwts_never_stay() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let args = json!({
            "id": "ws-1",
            "context": {"REPO_URL": "https://user:pw@git.example/r", "API_KEY": "k"},
            "jwtPayload": {"sub": "root"},
            "annotations": {"nogoo9/description": format!("see {jwt}")},
            "spec": {"containers": [{"name": "c", "env": [{"name": "T", "value": jwt}]}]},
            "token": "opaque",
            "count": 3
        });
        let r = redact(&args);
        let text = r.to_string();
        for secret in ["user:pw", "\"k\"", jwt, "opaque", "root"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(r["context"]["REPO_URL"], REDACTED, "keys kept, values gone");
        assert_eq!(r["id"], "ws-1");
        assert_eq!(r["count"], 3);
        assert_eq!(r["spec"]["containers"][0]["env"][0]["value"], REDACTED);
    }
}
