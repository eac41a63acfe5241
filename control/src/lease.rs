//! Leader election on a `coordination.k8s.io/v1` Lease, so that with several control
//! replicas exactly one culls at a time. The usual protocol (client-go's): the holder
//! renews `renewTime` every `renew_every`; anyone may take a lease whose holder has not
//! renewed it for `leaseDurationSeconds`; every write carries the resourceVersion it
//! read, so two replicas racing for it get one winner and one 409.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The lease the culler's leader holds.
pub const CULLER_LEASE: &str = "nocrd9-culler";

/// How a replica takes part.
#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub name: String,
    /// This replica's identity in `holderIdentity`.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

impl Election {
    /// The culler's election for a replica: identity from the host name and process.
    pub fn culler(namespace: &str) -> Election {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "nocrd9".into());
        Election {
            namespace: namespace.to_string(),
            name: CULLER_LEASE.into(),
            identity: format!(
                "{host}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
        }
    }
}

/// Takes part until `shutdown`; `leader` says whether this replica holds the lease now.
pub async fn run(
    client: kube::Client,
    election: Election,
    leader: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &election.namespace);
    let mut tick = tokio::time::interval(election.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let holds = match try_hold(&api, &election).await {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(error = %e, lease = %election.name, "lease round failed");
                false
            }
        };
        leader.send_if_modified(|was| {
            if *was != holds {
                tracing::info!(lease = %election.name, identity = %election.identity, leader = holds, "leadership changed");
                *was = holds;
                true
            } else {
                false
            }
        });
    }
    // Give the lease up on the way out, so another replica takes over at once.
    if *leader.borrow()
        && let Ok(mut lease) = api.get(&election.name).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(&election.identity)
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        let _ = api
            .replace(&election.name, &PostParams::default(), &lease)
            .await;
    }
    let _ = leader.send(false);
}

/// One round: create, renew or take over the lease; whether this replica holds it now.
async fn try_hold(api: &Api<Lease>, e: &Election) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(&e.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(e.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(e.identity.clone()),
                lease_duration_seconds: Some(e.lease_duration.as_secs() as i32),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(err) => Err(err),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let mine = spec.holder_identity.as_deref() == Some(&e.identity);
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => {
            now.duration_since(*renewed).as_secs_f64() > f64::from(secs)
        }
        _ => true,
    };
    if !mine && !expired && spec.holder_identity.is_some() {
        return Ok(false);
    }
    if !mine {
        spec.holder_identity = Some(e.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(e.lease_duration.as_secs() as i32);
    spec.renew_time = Some(MicroTime(now));
    // The resourceVersion read above is the precondition: one winner per round.
    match api.replace(&e.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Runs `round` every `every` while `leader` says this replica holds the Lease, until
/// `shutdown` (the culler and the warm pools: work exactly one replica must do).
pub async fn while_leading<F, Fut>(
    mut leader: watch::Receiver<bool>,
    every: Duration,
    shutdown: CancellationToken,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = leader.changed() => continue,
        }
        if *leader.borrow() {
            round().await;
        }
    }
}
