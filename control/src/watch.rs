//! Watches workspace pods and keeps the publisher's table equal to them.

use std::collections::HashMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use shared::names;
use shared::route::Route;
use shared::table::Change;
use tokio::sync::watch as tokio_watch;
use tokio_util::sync::CancellationToken;

use crate::publish::Publisher;
use crate::routes::route_for_pod;

/// Runs until `shutdown`: lists and watches pods labelled `nogoo9/type=workspace` in
/// `pods`' scope and publishes their routes. `synced` turns true after the first full
/// list has been published (the control plane's readiness).
pub async fn run(
    pods: Api<Pod>,
    default_port: u16,
    publisher: Publisher,
    synced: tokio_watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let selector = format!("{}={}", names::TYPE_LABEL, names::TYPE_WORKSPACE);
    let stream = watcher(pods, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    // pod UID → the workspace it routes (so a deleted pod's removal is fenced by UID).
    let mut known: HashMap<String, Route> = HashMap::new();
    let mut relist: Option<HashMap<String, Route>> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = stream.next() => e,
        };
        let Some(event) = event else { return };
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                // The stream's backoff delays the retry; say why routes may be stale.
                tracing::warn!(error = %e, "watching workspace pods failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => relist = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(buffer), Some(route)) =
                    (relist.as_mut(), route_for_pod(&pod, default_port))
                {
                    buffer.insert(route.pod_uid.clone(), route);
                }
            }
            watcher::Event::InitDone => {
                known = relist.take().unwrap_or_default();
                publisher.replace_all(known.values().cloned());
                synced.send_replace(true);
            }
            watcher::Event::Apply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let change = match route_for_pod(&pod, default_port) {
                    Some(route) => {
                        if known.get(&uid) == Some(&route) {
                            continue;
                        }
                        known.insert(uid, route.clone());
                        Change::Upsert { route }
                    }
                    None => match known.remove(&uid) {
                        Some(old) => Change::Remove {
                            workspace_id: old.workspace_id,
                            pod_uid: old.pod_uid,
                        },
                        None => continue,
                    },
                };
                publisher.update(vec![change]);
            }
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(old) = known.remove(&uid) {
                    publisher.update(vec![Change::Remove {
                        workspace_id: old.workspace_id,
                        pod_uid: old.pod_uid,
                    }]);
                }
            }
        }
    }
}
