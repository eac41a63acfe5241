//! MCP sessions belong to the identity that opened them. rmcp keeps sessions by id only,
//! so without this a second user who learned a session id (a log, a shared proxy, a
//! leaked header) could call tools in it, attach to its event stream or end it with her
//! own valid token. This layer sits between the token check and rmcp: it records who
//! opened each session, and a request carrying a session id that is not the caller's —
//! someone else's, or one it never saw — reaches rmcp with an id nobody has, so it gets
//! exactly the answer an unknown session gets (same status, same body), whichever
//! method it used.
//!
//! Fail-closed: an id this layer forgot (it keeps at most [`MAX_SESSIONS`], dropping the
//! oldest) is unknown for everyone, so forgetting ends a session rather than opening it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use shared::auth::Identity;

/// The header MCP's streamable HTTP transport carries the session in.
const SESSION_HEADER: &str = "mcp-session-id";
/// Sessions remembered at most; the oldest are forgotten (and so end) beyond this.
pub const MAX_SESSIONS: usize = 100_000;

#[derive(Default)]
struct Owners {
    by_id: HashMap<String, Arc<str>>,
    order: VecDeque<String>,
}

/// Who opened which session.
#[derive(Clone, Default)]
pub struct SessionOwners(Arc<Mutex<Owners>>);

impl SessionOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn owner(&self, id: &str) -> Option<Arc<str>> {
        self.lock().by_id.get(id).cloned()
    }

    fn record(&self, id: &str, sub: Arc<str>) {
        let mut o = self.lock();
        if o.by_id.insert(id.to_string(), sub).is_none() {
            o.order.push_back(id.to_string());
        }
        while o.order.len() > MAX_SESSIONS {
            if let Some(old) = o.order.pop_front() {
                o.by_id.remove(&old);
            }
        }
    }

    fn forget(&self, id: &str) {
        let mut o = self.lock();
        if o.by_id.remove(id).is_some() {
            o.order.retain(|x| x != id);
        }
    }

    /// How many sessions are remembered.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The axum middleware (after the token check, which put the `Identity` in).
pub async fn bind(State(owners): State<SessionOwners>, mut req: Request, next: Next) -> Response {
    let Some(sub) = req.extensions().get::<Identity>().map(|i| i.sub.clone()) else {
        // Auth off (one tenant) or a CORS preflight: nothing to bind.
        return next.run(req).await;
    };
    let asked = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(id) = &asked
        && owners.owner(id).as_deref() != Some(&*sub)
    {
        // Not this caller's session: let rmcp answer as for a session that never was.
        let nobody = format!("unknown-{}", uuid::Uuid::new_v4());
        if let Ok(v) = HeaderValue::from_str(&nobody) {
            req.headers_mut().insert(SESSION_HEADER, v);
        }
        return next.run(req).await;
    }
    let deleting = req.method() == Method::DELETE;
    let resp = next.run(req).await;
    match &asked {
        // A new session (the answer to `initialize`) is the caller's.
        None => {
            if let Some(id) = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                owners.record(id, sub);
            }
        }
        Some(id) => {
            let ended =
                (deleting && resp.status().is_success()) || resp.status() == StatusCode::NOT_FOUND;
            if ended {
                owners.forget(id);
            }
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_sessions_are_forgotten_beyond_the_cap() {
        let o = SessionOwners::default();
        for i in 0..MAX_SESSIONS + 3 {
            o.record(&format!("s{i}"), "u".into());
        }
        assert_eq!(o.len(), MAX_SESSIONS);
        assert!(o.owner("s0").is_none() && o.owner("s2").is_none());
        assert_eq!(o.owner("s3").as_deref(), Some("u"));
        o.forget("s3");
        assert!(o.owner("s3").is_none());
        o.record("s4", "other".into());
        assert_eq!(
            o.owner("s4").as_deref(),
            Some("other"),
            "a re-record does not duplicate"
        );
    }
}
