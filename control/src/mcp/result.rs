//! A domain result as an MCP tool result: text plus structured JSON on success; on
//! failure an error the agent can act on (`isError: true`, text `Error: <message>`, and
//! `{code, message}` as structured content — the original put `code`/`message` at the
//! top level, which MCP's result type has no room for).

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;

use crate::outcome::{Outcome, ToolError};

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
