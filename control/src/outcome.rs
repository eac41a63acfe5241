//! What a tool returns: text plus structured JSON on success; on failure an error the
//! agent can act on (`isError: true`, text `Error: <message>`, and `{code, message}` as
//! structured content — the original put `code`/`message` at the top level, which MCP's
//! result type has no room for).

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

/// A successful tool result.
pub struct Outcome {
    pub text: String,
    pub structured: Value,
}

/// A failed tool call, with an HTTP-like code (Kubernetes' when it came from there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    pub code: u16,
    pub message: String,
}

impl ToolError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        ToolError {
            code: 400,
            message: message.into(),
        }
    }
}

impl From<kube::Error> for ToolError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => {
                let code = if status.code == 0 { 500 } else { status.code };
                let reason = if status.reason.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", status.reason)
                };
                ToolError {
                    code,
                    message: format!("HTTP {code}: {reason}{}", status.message),
                }
            }
            other => ToolError {
                code: 503,
                message: format!(
                    "Cannot reach the Kubernetes API server ({other}). Is your cluster running? Run: kubectl cluster-info"
                ),
            },
        }
    }
}

pub fn to_result(r: Result<Outcome, ToolError>) -> CallToolResult {
    match r {
        Ok(o) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(o.text)]);
            result.structured_content = Some(o.structured);
            result
        }
        Err(e) => {
            let mut result =
                CallToolResult::error(vec![ContentBlock::text(format!("Error: {}", e.message))]);
            result.structured_content = Some(json!({"code": e.code, "message": e.message}));
            result
        }
    }
}
