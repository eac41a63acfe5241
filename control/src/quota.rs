//! Per-user workspace limits that concurrent spawns cannot beat, across replicas: each of
//! a user's live workspaces holds one of `limit` slots, a ConfigMap
//! `nogoo9-slot-<owner hash>-<k>` in control's namespace (`k < limit`, label
//! `nogoo9/claim=slot`) naming the workspace id. Taking a slot is a create: the API server
//! lets one creation of a name succeed, so N racing spawns for the last slot make one
//! workspace. A slot goes with its workspace's id claim (`release`), and a slot whose id
//! claim is gone (a control that died mid-spawn) is reclaimed when a spawn finds no free
//! one. Administrators have no limit.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use shared::ids::WorkspaceId;

use shared::names::CLAIM_LABEL;

/// Slot ConfigMaps' names start so.
pub const SLOT_PREFIX: &str = "nogoo9-slot-";
/// `nogoo9/claim=slot`.
pub const CLAIM_SLOT: &str = "slot";
/// Label naming the workspace a slot is held for.
const SLOT_OF_LABEL: &str = "nogoo9/slot-of";

/// Slot `k` of `owner`.
pub fn slot_name(owner: &str, k: u32) -> String {
    format!(
        "{SLOT_PREFIX}{:016x}-{k}",
        shared::hash::fnv1a(owner.as_bytes())
    )
}

/// Takes a free slot of `owner` (at most `limit`) for workspace `id`: `Ok(false)` when
/// all are held by live workspaces.
pub async fn take(
    client: &kube::Client,
    ns: &str,
    owner: &str,
    id: &WorkspaceId,
    limit: u32,
) -> Result<bool, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for attempt in 0..2 {
        for k in 0..limit {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(slot_name(owner, k)),
                    labels: Some(
                        [
                            (CLAIM_LABEL.to_string(), CLAIM_SLOT.to_string()),
                            (SLOT_OF_LABEL.to_string(), id.to_string()),
                        ]
                        .into(),
                    ),
                    annotations: Some(
                        [(
                            shared::names::USER_SUB_ANNOTATION.to_string(),
                            owner.to_string(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        // Every slot is held: reclaim those whose workspace is gone, then try once more.
        if attempt == 0 && reclaim_stale(client, ns, owner, limit).await? == 0 {
            break;
        }
    }
    Ok(false)
}

/// Deletes `owner`'s slots held for ids that have no id claim any more; how many.
async fn reclaim_stale(
    client: &kube::Client,
    ns: &str,
    owner: &str,
    limit: u32,
) -> Result<usize, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut freed = 0;
    for k in 0..limit {
        let Some(cm) = api.get_opt(&slot_name(owner, k)).await? else {
            continue;
        };
        let held_for = cm
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SLOT_OF_LABEL))
            .and_then(|i| WorkspaceId::parse(i).ok());
        let live = match &held_for {
            Some(id) => api
                .get_opt(&format!("{}{id}", shared::names::ID_CLAIM_PREFIX))
                .await?
                .is_some(),
            None => false,
        };
        if !live {
            delete_exact(&api, &cm).await?;
            freed += 1;
        }
    }
    Ok(freed)
}

/// Gives back the slot held for workspace `id` (if any).
pub async fn release(client: &kube::Client, ns: &str, id: &WorkspaceId) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let selector = format!("{CLAIM_LABEL}={CLAIM_SLOT},{SLOT_OF_LABEL}={id}");
    for cm in api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        delete_exact(&api, &cm).await?;
    }
    Ok(())
}

/// Deletes this very ConfigMap (UID precondition): a newer one of the name is kept.
async fn delete_exact(api: &Api<ConfigMap>, cm: &ConfigMap) -> Result<(), kube::Error> {
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cm.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api
        .delete(cm.metadata.name.as_deref().unwrap_or_default(), &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The limit for a spawn: the template's `nogoo9/max-per-user` over the server's.
pub fn limit_for(
    annotations: &std::collections::BTreeMap<String, String>,
    server: Option<u32>,
) -> Result<Option<u32>, String> {
    match annotations.get(shared::names::MAX_PER_USER_ANNOTATION) {
        None => Ok(server),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "annotation {} must be a whole number of at least 1, got {v:?}",
                    shared::names::MAX_PER_USER_ANNOTATION
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_named_per_owner_and_limits_come_from_the_template_first() {
        assert_ne!(slot_name("alice", 0), slot_name("bob", 0));
        assert_ne!(slot_name("alice", 0), slot_name("alice", 1));
        assert!(slot_name("a@b.example", 2).starts_with(SLOT_PREFIX));
        assert!(shared::k8s_names::dns_subdomain_problem(&slot_name("a@b.example", 2)).is_none());
        let ann = |v: &str| {
            [(
                shared::names::MAX_PER_USER_ANNOTATION.to_string(),
                v.to_string(),
            )]
            .into()
        };
        assert_eq!(limit_for(&Default::default(), Some(3)), Ok(Some(3)));
        assert_eq!(limit_for(&ann("5"), Some(3)), Ok(Some(5)));
        assert_eq!(limit_for(&ann("5"), None), Ok(Some(5)));
        assert!(limit_for(&ann("0"), None).is_err());
        assert!(limit_for(&ann("many"), None).is_err());
    }
}
