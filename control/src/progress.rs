//! MCP progress notifications for long tool calls (a spawn waits for its pod and for
//! every gateway): sent only when the client asked, with a `progressToken`.

use rmcp::RoleServer;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};

#[derive(Clone, Default)]
pub struct Progress {
    target: Option<(Peer<RoleServer>, ProgressToken)>,
}

impl Progress {
    /// Reports to the caller of this request, if it sent a progress token.
    pub fn for_request(rc: &RequestContext<RoleServer>) -> Progress {
        Progress {
            target: rc
                .meta
                .get_progress_token()
                .map(|token| (rc.peer.clone(), token)),
        }
    }

    /// Reports nowhere (library callers, `nocrd9 dev`).
    pub fn none() -> Progress {
        Progress::default()
    }

    /// Step `done` of `total`, with what is happening. A client that went away is not
    /// an error of the tool.
    pub async fn report(&self, done: u32, total: u32, message: impl Into<String>) {
        if let Some((peer, token)) = &self.target {
            let param = ProgressNotificationParam::new(token.clone(), f64::from(done))
                .with_total(f64::from(total))
                .with_message(message);
            if let Err(e) = peer.notify_progress(param).await {
                tracing::debug!(error = %e, "progress notification not delivered");
            }
        }
    }
}
