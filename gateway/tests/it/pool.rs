//! Warm pools on the simulated cluster, through the real control plane and gateway with
//! tokens on. A template with `nogoo9/warm-pool-size: 2` keeps two unowned, unroutable
//! pods Ready; a spawn takes one that was created before the call, its id, owner and
//! context arrive in the running pod's `/var/run/nogoo9/` files, and the pool refills.
//! Racing spawns never share a pod (the losers take the next one or start cold); a new
//! template version replaces the pool; a template that needs its context in the
//! environment is refused a pool, and nothing is stored.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::{eventually, get};
use crate::mcp::{call, client_as, text};

const SECRET: &str = "pool-test-secret-pool-test-secret-pool-x";

fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pool's Ready pods (names), when there are exactly `n` and every one carries
/// `hash` (when given).
async fn pool_ready(pods: &Api<Pod>, n: usize) -> Option<Vec<Pod>> {
    let list = pods
        .list(&ListParams::default().labels("nogoo9/type=pool"))
        .await
        .ok()?;
    let live: Vec<Pod> = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    (live.len() == n && live.iter().all(is_ready)).then_some(live)
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn template(name: &str, annotations: Value) -> ConfigMap {
    let spec = json!({
        "containers": [
            // The context reaches the first container, here through the files.
            {"name": "reader", "image": "local", "command": ["sh", "-c",
                "d=/var/run/nogoo9; while [ ! -s $d/context.json ]; do sleep 0.05; done; \
                 echo \"ctx $(cat $d/context.json) id $(cat $d/workspace-id) owner $(cat $d/owner) env ${PROJECT:-none}\"; \
                 exec sleep 3600"]},
            {"name": "app", "image": "node:20-alpine"}
        ]
    });
    crate::harness::template_config_map(name, annotations, spec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_takes_a_warm_pod_made_before_it_and_never_shares_one() {
    let auth = shared::auth::AuthArgs::hs256(SECRET)
        .build()
        .expect("a valid secret");
    let (h, gw) =
        crate::harness::lifecycle_pair(auth, |c| c.admin_subjects = ["root".to_string()].into())
            .await;
    let kube = h.kube().await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let evs: Api<Event> = Api::namespaced(kube.clone(), "default");

    // A template that wants its context in the environment is refused a pool; nothing is
    // stored.
    let root = client_as(&h.mcp_url(), &control::testkit::token(SECRET, "root")).await;
    let r = call(
        &root,
        "create_template",
        json!({"name": "envy", "annotations": {"nogoo9/warm-pool-size": "2",
               "nogoo9/required-context": "PROJECT"},
               "spec": {"containers": [{"name": "m", "image": "node:20-alpine"}]}}),
    )
    .await;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        text(&r).contains("nogoo9/context-delivery: file"),
        "{}",
        text(&r)
    );
    assert!(
        cms.get_opt("envy").await.ok().flatten().is_none(),
        "nothing stored"
    );

    let pooled = json!({"nogoo9/warm-pool-size": "2", "nogoo9/required-context": "PROJECT",
                        "nogoo9/context-delivery": "file"});
    cms.create(&PostParams::default(), &template("fast", pooled))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let warm = eventually("two warm pods", || pool_ready(&pods, 2)).await;
    let warm_names: BTreeSet<String> = warm.iter().map(name).collect();

    // A spawn takes one of them.
    let alice_token = control::testkit::token(SECRET, "alice");
    let alice = client_as(&h.mcp_url(), &alice_token).await;
    let r = call(
        &alice,
        "spawn_workspace",
        json!({"id": "fast1", "templateRef": "fast", "context": {"PROJECT": "apollo"}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let out = r.structured_content.clone().unwrap_or_default();
    let pod_name = out["podName"].as_str().unwrap_or_default().to_string();
    assert!(
        warm_names.contains(&pod_name),
        "{pod_name} is not one of {warm_names:?}: {out}"
    );
    let claim = cms
        .get("nogoo9-ws-fast1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claim.data.unwrap_or_default().get("pod"), Some(&pod_name));
    let bearer = format!("Bearer {alice_token}");
    let r = get(gw.addr, "/route/fast1/", &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let lp = LogParams {
        container: Some("reader".into()),
        ..Default::default()
    };
    let line = eventually("the context in the claimed pod's files", || async {
        let log = pods.logs(&pod_name, &lp).await.ok()?;
        log.lines()
            .find(|l| l.starts_with("ctx "))
            .map(str::to_string)
    })
    .await;
    assert_eq!(
        line,
        r#"ctx {"PROJECT":"apollo"} id fast1 owner alice env none"#
    );
    let claimed_events =
        crate::harness::count_events(&evs, |e| e.reason.as_deref() == Some("ClaimedFromPool"))
            .await;
    assert_eq!(claimed_events, 1);
    // Nobody else reaches it; the pool is not a workspace anyone lists.
    let mallory = format!("Bearer {}", control::testkit::token(SECRET, "mallory"));
    let r = get(gw.addr, "/route/fast1/", &[("authorization", &mallory)]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let listed = call(&root, "list_workspaces", json!({})).await;
    let rows = listed.structured_content.unwrap_or_default()["workspaces"].clone();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");

    // The pool refills; three racing spawns take both warm pods (a refill during the race
    // may add a third) and never share one; whoever finds none left starts cold.
    let warm = eventually("the pool refilled", || pool_ready(&pods, 2)).await;
    let warm_names: BTreeSet<String> = warm.iter().map(name).collect();
    let spawns = futures::future::join_all(["r1", "r2", "r3"].map(|id| {
        let alice = &alice;
        async move {
            let r = call(
                alice,
                "spawn_workspace",
                json!({"id": id, "templateRef": "fast", "context": {"PROJECT": id}}),
            )
            .await;
            assert_ne!(r.is_error, Some(true), "{}", text(&r));
            let out = r.structured_content.unwrap_or_default();
            let pod = out["podName"].as_str().unwrap_or_default().to_string();
            (pod, out["fromPool"] == true)
        }
    }))
    .await;
    let distinct: BTreeSet<&String> = spawns.iter().map(|(p, _)| p).collect();
    assert_eq!(distinct.len(), 3, "{spawns:?}");
    for (pod, pooled) in &spawns {
        let prefix = if *pooled { "pool-fast-" } else { "ws-alice-" };
        assert!(pod.starts_with(prefix), "{spawns:?}");
    }
    let taken = spawns
        .iter()
        .filter(|(p, _)| warm_names.contains(p))
        .count();
    assert_eq!(
        taken, 2,
        "both warm pods taken: {spawns:?} vs {warm_names:?}"
    );
    for id in ["r1", "r2", "r3"] {
        let r = get(
            gw.addr,
            &format!("/route/{id}/"),
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(r.status, 200, "{id}: {}", r.body);
    }

    // A new template version replaces the pool; no old pod is handed out.
    let old = eventually("the pool refilled again", || pool_ready(&pods, 2)).await;
    let old_names: BTreeSet<String> = old.iter().map(name).collect();
    cms.patch(
        "fast",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"nogoo9/idle-timeout": "1h"}}})),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    eventually("the pool made from the new version", || async {
        let now = pool_ready(&pods, 2).await?;
        now.iter()
            .all(|p| !old_names.contains(&name(p)))
            .then_some(())
    })
    .await;

    // A warm pod older than the idle timeout is not culled when it is taken: its time as
    // a workspace starts at the claim.
    let idle = json!({"nogoo9/warm-pool-size": "1", "nogoo9/idle-timeout": "3s",
                      "nogoo9/context-delivery": "file"});
    cms.create(&PostParams::default(), &template("idle", idle))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("a warm pod older than the idle timeout", || async {
        let list = pods
            .list(&ListParams::default().labels("nogoo9/type=pool,nogoo9/template=idle"))
            .await
            .ok()?;
        let started = list
            .items
            .iter()
            .filter(|p| is_ready(p))
            .find_map(|p| p.status.as_ref()?.start_time.as_ref().map(|t| t.0))?;
        let age = k8s_openapi::jiff::Timestamp::now().duration_since(started);
        (age.as_secs() >= 5).then_some(())
    })
    .await;
    let r = call(
        &alice,
        "spawn_workspace",
        json!({"id": "late", "templateRef": "idle", "context": {}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(r.structured_content.unwrap_or_default()["fromPool"], true);
    let listed = call(&alice, "list_workspaces", json!({})).await;
    let rows = listed.structured_content.unwrap_or_default()["workspaces"].clone();
    let late = rows
        .as_array()
        .and_then(|r| r.iter().find(|w| w["id"] == "late"))
        .cloned()
        .unwrap_or_default();
    let cull_at: k8s_openapi::jiff::Timestamp = late["cullAt"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("cullAt of {late}: {e}"));
    let left = cull_at.duration_since(k8s_openapi::jiff::Timestamp::now());
    assert!(left.as_secs_f64() > 1.0, "culled {left:?} from now: {late}");
    let r = get(gw.addr, "/route/late/", &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let _ = alice.cancel().await;
    let _ = root.cancel().await;
    drop(gw);
    h.stop().await;
}
