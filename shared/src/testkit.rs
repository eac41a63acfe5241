//! Helpers every crate's tests share (feature `testkit`, and this crate's own tests): a
//! route builder and waiting on a condition with a deadline — never on a bare sleep.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::ids::WorkspaceId;
use crate::route::{Route, RouteState};

/// A Ready route for workspace `id` of pod `uid` at `addr`, owned by `owner`.
pub fn route(id: &str, uid: &str, addr: SocketAddr, owner: Option<&str>) -> Route {
    Route {
        workspace_id: WorkspaceId::parse(id).expect("a valid workspace id"),
        pod_uid: uid.into(),
        namespace: "default".into(),
        state: RouteState::Ready,
        addr: Some(addr),
        owner_sub: owner.map(str::to_string),
        port_is_default: false,
        web: Default::default(),
    }
}

/// Polls `check` every 10 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    eventually_async(what, limit, || std::future::ready(check())).await
}

/// [`eventually`] for a condition that must be awaited (an HTTP call, a Kubernetes read).
pub async fn eventually_async<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
