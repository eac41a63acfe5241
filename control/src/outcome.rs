//! What an operation returns: text plus structured JSON on success, or an error with an
//! HTTP-like code the caller can act on. The MCP layer renders these (`mcp::result`);
//! the domain modules never see MCP types.

use serde_json::Value;

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

    pub fn forbidden(message: impl Into<String>) -> Self {
        ToolError {
            code: 403,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ToolError {
            code: 404,
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ToolError {
            code: 409,
            message: message.into(),
        }
    }

    /// Something on our side failed (500).
    pub fn internal(message: impl Into<String>) -> Self {
        ToolError {
            code: 500,
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
            // Never the body: it can hold other users' objects.
            kube::Error::SerdeError(_) => ToolError {
                code: 502,
                message:
                    "the Kubernetes API answered with something that is not the expected object"
                        .into(),
            },
            other => ToolError {
                code: 503,
                message: format!(
                    "Cannot reach the Kubernetes API server ({other}). Is your cluster running? Run: kubectl cluster-info"
                ),
            },
        }
    }
}
