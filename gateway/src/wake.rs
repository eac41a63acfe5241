//! Waking suspended workspaces on their owner's request (`nogoo9/wake-on-request`): the
//! request waits while control resumes the workspace, then goes through as if it had
//! never been suspended. Admission asks only after the owner check, so a stranger's
//! request never starts anything. Asks go to control over the route feed (`sync.rs`),
//! again every [`RESEND`] while someone waits (control dedupes; a reconnect loses
//! nothing); the wait ends when the table routes the id to a Ready pod, when the id
//! leaves the table (stopped), or at the wake timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::ids::WorkspaceId;
use shared::route::Route;

use crate::store::RouteStore;

/// How often an unanswered ask is repeated.
pub const RESEND: Duration = Duration::from_secs(2);

/// Ids someone is waiting on, and when each was last asked for.
#[derive(Debug, Default)]
pub struct Waker {
    wanted: Mutex<HashMap<WorkspaceId, Want>>,
    /// Tells the feed there is something new to ask for.
    asked: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Want {
    waiters: usize,
    sent: Option<Instant>,
}

/// How a wait for a suspended workspace ended.
#[derive(Debug)]
pub enum Woken {
    /// Routed to a Ready pod: the request goes on with this route.
    Ready(Arc<Route>),
    /// The id left the table (the workspace was stopped meanwhile).
    Gone,
    /// Not Ready within the wake timeout.
    TimedOut,
}

impl Waker {
    /// Waits up to `limit` for `id` to be routed to a Ready pod, asking control to
    /// resume it meanwhile.
    pub async fn wake(&self, store: &RouteStore, id: &WorkspaceId, limit: Duration) -> Woken {
        let mut changes = store.changes();
        let _interest = self.register(id);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match store.load().get(id) {
                None => return Woken::Gone,
                Some(r) if !r.web.suspended && r.upstream().is_some() => {
                    return Woken::Ready(r.clone());
                }
                Some(_) => {}
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Woken::TimedOut,
            }
        }
    }

    /// Whether a request is waiting for `id` to wake. Control resumes a workspace by
    /// routing it to a new pod that is not Ready yet; requests that arrive in that window
    /// join the wait instead of being told the workspace is not ready.
    pub fn is_waking(&self, id: &WorkspaceId) -> bool {
        self.waiters(id) > 0
    }

    /// How many requests wait for `id` to wake.
    pub fn waiters(&self, id: &WorkspaceId) -> usize {
        self.wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map_or(0, |w| w.waiters)
    }

    fn register(&self, id: &WorkspaceId) -> Interest<'_> {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        wanted.entry(id.clone()).or_default().waiters += 1;
        drop(wanted);
        self.asked.notify_one();
        Interest {
            waker: self,
            id: id.clone(),
        }
    }

    /// Ids to ask for now (never asked, or not within [`RESEND`]); marks them asked.
    pub fn due(&self, now: Instant) -> Vec<WorkspaceId> {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        wanted
            .iter_mut()
            .filter(|(_, w)| w.sent.is_none_or(|s| now.duration_since(s) >= RESEND))
            .map(|(id, w)| {
                w.sent = Some(now);
                id.clone()
            })
            .collect()
    }

    /// Resolves when a new id is wanted (the feed then sends what is [`due`](Self::due)).
    pub async fn asked(&self) {
        self.asked.notified().await;
    }
}

/// A waiter's place; the id is forgotten when nobody waits on it any more.
struct Interest<'a> {
    waker: &'a Waker,
    id: WorkspaceId,
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        let mut wanted = self.waker.wanted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = wanted.get_mut(&self.id) {
            w.waiters -= 1;
            if w.waiters == 0 {
                wanted.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::route::{RouteState, WebOptions};
    use shared::table::RouteTable;

    fn route(id: &WorkspaceId, suspended: bool) -> Route {
        Route {
            workspace_id: id.clone(),
            pod_uid: "u".into(),
            namespace: "ws".into(),
            state: if suspended {
                RouteState::Pending
            } else {
                RouteState::Ready
            },
            addr: (!suspended).then(|| "127.0.0.1:9".parse().unwrap_or_else(|e| panic!("{e}"))),
            owner_sub: Some("alice".into()),
            port_is_default: true,
            web: WebOptions {
                suspended,
                wake_on_request: true,
                ..Default::default()
            },
        }
    }

    fn table(routes: Vec<Route>) -> RouteTable {
        RouteTable::from_routes(1, 1, routes)
    }

    #[tokio::test]
    async fn a_wait_asks_once_per_resend_and_ends_when_the_pod_is_ready() {
        let id = WorkspaceId::parse("w").unwrap_or_else(|e| panic!("{e}"));
        let store = RouteStore::new();
        store.replace(table(vec![route(&id, true)]));
        let waker = Arc::new(Waker::default());
        let waiting = tokio::spawn({
            let (waker, store, id) = (waker.clone(), store.clone(), id.clone());
            async move { waker.wake(&store, &id, Duration::from_secs(30)).await }
        });
        waker.asked().await;
        let now = Instant::now();
        assert_eq!(waker.due(now), vec![id.clone()]);
        assert!(waker.due(now).is_empty(), "asked already");
        assert_eq!(waker.due(now + RESEND), vec![id.clone()], "asked again");
        store.replace(table(vec![route(&id, false)]));
        let woken = waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(woken, Woken::Ready(r) if r.upstream().is_some()));
        assert!(
            waker.due(now + RESEND * 3).is_empty(),
            "nobody waits any more"
        );
    }

    #[tokio::test]
    async fn an_id_is_waking_while_someone_waits_on_it() {
        let id = WorkspaceId::parse("w").unwrap_or_else(|e| panic!("{e}"));
        let store = RouteStore::new();
        store.replace(table(vec![route(&id, true)]));
        let waker = Arc::new(Waker::default());
        assert!(!waker.is_waking(&id));
        let waiting = tokio::spawn({
            let (waker, store, id) = (waker.clone(), store.clone(), id.clone());
            async move { waker.wake(&store, &id, Duration::from_secs(30)).await }
        });
        waker.asked().await;
        assert!(waker.is_waking(&id));
        store.replace(table(vec![route(&id, false)]));
        waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(!waker.is_waking(&id), "nobody waits any more");
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_workspace_is_stopped_or_the_time_is_up() {
        let id = WorkspaceId::parse("w").unwrap_or_else(|e| panic!("{e}"));
        let store = RouteStore::new();
        store.replace(table(vec![route(&id, true)]));
        let waker = Waker::default();
        let timed_out = waker.wake(&store, &id, Duration::from_millis(20)).await;
        assert!(matches!(timed_out, Woken::TimedOut));
        let waiting = async { waker.wake(&store, &id, Duration::from_secs(30)).await };
        let stop = async {
            tokio::task::yield_now().await;
            store.replace(table(vec![]));
        };
        let (woken, ()) = tokio::join!(waiting, stop);
        assert!(matches!(woken, Woken::Gone));
    }
}
