//! Watches workspace pods and id claims, keeps the `claims::Index` equal to them, and
//! publishes what it decides: each id's route (the claimed pod, else the oldest live
//! pod) and the release of claims whose pods are gone. Routes are published only once
//! both first lists are in, so gateways never see a table missing half its claims.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use shared::names;
use tokio::sync::watch as tokio_watch;
use tokio_util::sync::CancellationToken;

use crate::claims::{self, Effects, Release, Workspaces};
use crate::publish::Publisher;

/// How often claims whose pod never appeared are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What the watch is told to keep up to date.
pub struct WatchTargets {
    /// Workspace pods in the server's scope (one namespace, or all).
    pub pods: Api<Pod>,
    /// Claim ConfigMaps in the claim namespace.
    pub claims: Api<ConfigMap>,
    pub index: Workspaces,
    pub publisher: Publisher,
}

enum Event {
    Pod(Box<Result<watcher::Event<Pod>, watcher::Error>>),
    Claim(Box<Result<watcher::Event<ConfigMap>, watcher::Error>>),
}

/// A relist in progress for one of the two watches.
#[derive(Default)]
struct Relist<K> {
    buffer: Option<Vec<K>>,
    done: bool,
}

/// Runs until `shutdown`. `synced` turns true after both first lists have been
/// published (the control plane's readiness).
pub async fn run(
    targets: WatchTargets,
    synced: tokio_watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let WatchTargets {
        pods,
        claims: claim_api,
        index,
        publisher,
    } = targets;
    let pod_selector = format!("{}={}", names::TYPE_LABEL, names::TYPE_WORKSPACE);
    let pod_events = watcher(pods, watcher::Config::default().labels(&pod_selector))
        .default_backoff()
        .map(|e| Event::Pod(Box::new(e)));
    let claim_events = watcher(
        claim_api.clone(),
        watcher::Config::default().labels(&claims::claim_selector()),
    )
    .default_backoff()
    .map(|e| Event::Claim(Box::new(e)));
    let events = futures::stream::select(pod_events, claim_events);
    futures::pin_mut!(events);
    let mut pod_relist: Relist<Pod> = Relist::default();
    let mut claim_relist: Relist<ConfigMap> = Relist::default();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sweep.tick() => {
                if pod_relist.done && claim_relist.done {
                    let now = k8s_openapi::jiff::Timestamp::now().to_string();
                    let abandoned = lock(&index).abandoned_claims(&now, claims::CLAIM_GRACE);
                    release(&claim_api, abandoned);
                }
                continue;
            }
            e = events.next() => e,
        };
        let Some(event) = event else { return };
        let effects = match event {
            Event::Pod(e) => match *e {
                Ok(e) => on_event(
                    &mut pod_relist,
                    e,
                    |index, done| match done {
                        Ok(list) => index.reset_pods(list.iter()),
                        Err(Change::Apply(pod)) => index.pod_applied(&pod),
                        Err(Change::Delete(pod)) => index.pod_deleted(&pod),
                    },
                    &index,
                ),
                Err(e) => {
                    // The stream's backoff delays the retry; say why routes may be stale.
                    tracing::warn!(error = %e, "watching workspace pods failed; retrying");
                    continue;
                }
            },
            Event::Claim(e) => match *e {
                Ok(e) => on_event(
                    &mut claim_relist,
                    e,
                    |index, done| match done {
                        Ok(list) => index.reset_claims(list.iter()),
                        Err(Change::Apply(cm)) => index.claim_applied(&cm),
                        Err(Change::Delete(cm)) => index.claim_deleted(&cm),
                    },
                    &index,
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "watching workspace id claims failed; retrying");
                    continue;
                }
            },
        };
        let Some(applied) = effects else { continue };
        if !(pod_relist.done && claim_relist.done) {
            continue;
        }
        if !*synced.borrow() || applied.relisted {
            let routes: Vec<_> = lock(&index).routes().cloned().collect();
            publisher.replace_all(routes);
            synced.send_replace(true);
        } else {
            publisher.update(applied.inner.changes);
        }
        release(&claim_api, applied.inner.release);
    }
}

/// One object's change outside a relist.
enum Change<K> {
    Apply(K),
    Delete(K),
}

/// What an event did to the index, and whether it ended a relist (then the whole table
/// is republished rather than the changes).
struct Applied {
    inner: Effects,
    relisted: bool,
}

fn on_event<K>(
    relist: &mut Relist<K>,
    event: watcher::Event<K>,
    apply: impl FnOnce(&mut claims::Index, Result<Vec<K>, Change<K>>) -> Effects,
    index: &Workspaces,
) -> Option<Applied> {
    match event {
        watcher::Event::Init => {
            relist.buffer = Some(Vec::new());
            None
        }
        watcher::Event::InitApply(obj) => {
            if let Some(b) = relist.buffer.as_mut() {
                b.push(obj);
            }
            None
        }
        watcher::Event::InitDone => {
            let list = relist.buffer.take().unwrap_or_default();
            relist.done = true;
            Some(Applied {
                inner: apply(&mut lock(index), Ok(list)),
                relisted: true,
            })
        }
        watcher::Event::Apply(obj) => Some(Applied {
            inner: apply(&mut lock(index), Err(Change::Apply(obj))),
            relisted: false,
        }),
        watcher::Event::Delete(obj) => Some(Applied {
            inner: apply(&mut lock(index), Err(Change::Delete(obj))),
            relisted: false,
        }),
    }
}

fn lock(index: &Workspaces) -> std::sync::MutexGuard<'_, claims::Index> {
    index.lock().unwrap_or_else(|p| p.into_inner())
}

/// Deletes released claims in the background (idempotent across replicas).
fn release(api: &Api<ConfigMap>, releases: Vec<Release>) {
    for r in releases {
        let api = api.clone();
        tokio::spawn(async move {
            let client: kube::Client = api.clone().into_client();
            let ns = api.namespace().unwrap_or_default().to_string();
            if let Err(e) = claims::release(&client, &ns, &r).await {
                tracing::warn!(claim = %r.name, error = %e, "releasing a workspace id failed; the next sweep retries");
            }
        });
    }
}
