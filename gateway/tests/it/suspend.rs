//! Suspend and wake on the simulated cluster, through the real control plane and gateway
//! with tokens on. A template with `nogoo9/idle-action: suspend` loses its pod when idle
//! and keeps its id, its files (a PersistentVolumeClaim, `nogoo9/volume-size`) and its
//! spawn record (a Secret: the context never lands in a ConfigMap). A stranger's request
//! wakes nothing; the owner's concurrent requests share one wake and get 200 with the
//! files and context as they were; `resume_workspace` brings it back for the owner only;
//! `stop_workspace` of a suspended workspace removes the record and the volume. Without
//! `nogoo9/wake-on-request` a suspended workspace answers 503 `workspace_suspended`.

use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Pod, Secret};
use kube::Api;
use kube::api::{ListParams, LogParams, PostParams};
use serde_json::{Value, json};

use crate::harness::{eventually, get};
use crate::mcp::{call, client_as, text};

const SECRET: &str = "suspend-test-secret-suspend-test-secret-x";

/// The live (not terminating) pod of `id`, if any.
async fn live_pod(pods: &Api<Pod>, id: &str) -> Option<Pod> {
    pods.list(&ListParams::default().labels(&format!("nogoo9/workspace-id={id}")))
        .await
        .ok()?
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
}

async fn any_pod(pods: &Api<Pod>, id: &str) -> bool {
    pods.list(&ListParams::default().labels(&format!("nogoo9/workspace-id={id}")))
        .await
        .is_ok_and(|l| !l.items.is_empty())
}

async fn claim_state(cms: &Api<ConfigMap>, id: &str) -> Option<String> {
    let cm = cms.get_opt(&format!("nogoo9-ws-{id}")).await.ok()??;
    Some(
        cm.data
            .unwrap_or_default()
            .get("state")
            .cloned()
            .unwrap_or_else(|| "active".into()),
    )
}

async fn suspended(cms: &Api<ConfigMap>, pods: &Api<Pod>, id: &str) -> Option<()> {
    (claim_state(cms, id).await.as_deref() == Some("suspended") && !any_pod(pods, id).await)
        .then_some(())
}

async fn events(events: &Api<Event>, reason: &str, id: &str) -> usize {
    let about = format!("workspace {id} ");
    crate::harness::count_events(events, |e| {
        e.reason.as_deref() == Some(reason)
            && e.message.as_deref().is_some_and(|m| m.contains(&about))
    })
    .await
}

/// The writer container's log: one `run-<PROJECT_NAME>` line per start, kept on the volume.
async fn runs(pods: &Api<Pod>, pod: &str) -> Vec<String> {
    let lp = LogParams {
        container: Some("writer".into()),
        ..Default::default()
    };
    let log = pods.logs(pod, &lp).await.unwrap_or_default();
    // The last start printed the whole file; count the lines of that print.
    log.lines()
        .filter(|l| l.starts_with("run-"))
        .map(str::to_string)
        .collect()
}

/// The writer's lines once its file shows at least `n` starts.
async fn starts(pods: &Api<Pod>, pod: &str, n: usize) -> Vec<String> {
    eventually(&format!("{n} starts of the writer"), || async {
        let r = runs(pods, pod).await;
        (r.len() >= n).then_some(r)
    })
    .await
}

fn template(name: &str, annotations: Value) -> ConfigMap {
    let spec = json!({
        "containers": [
            // The context reaches the first container (as upstream does).
            {"name": "writer", "image": "local", "command": ["sh", "-c",
                "echo run-$PROJECT_NAME >> /data/runs; echo start; cat /data/runs; exec sleep 3600"],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "app", "image": "node:20-alpine"}
        ],
        "volumes": [{"name": "data", "emptyDir": {}}]
    });
    crate::harness::template_config_map(name, annotations, spec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_workspace_keeps_its_files_and_context_and_wakes_only_for_its_owner() {
    let auth = shared::auth::AuthArgs::hs256(SECRET)
        .build()
        .expect("a valid secret");
    let (h, gw) = crate::harness::lifecycle_pair(auth, |_| {}).await;
    let kube = h.kube().await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), "default");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(kube.clone(), "default");
    let evs: Api<Event> = Api::namespaced(kube.clone(), "default");
    let suspending = json!({
        "nogoo9/idle-timeout": "3s", "nogoo9/idle-action": "suspend",
        "nogoo9/required-context": "PROJECT_NAME"
    });
    let mut notebook = suspending.clone();
    notebook["nogoo9/wake-on-request"] = json!("true");
    notebook["nogoo9/volume-size"] = json!("1Gi");
    for t in [
        template("notebook", notebook),
        template("quiet", suspending),
    ] {
        cms.create(&PostParams::default(), &t)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    let alice_token = control::testkit::token(SECRET, "alice");
    let mallory_token = control::testkit::token(SECRET, "mallory");
    let alice = client_as(&h.mcp_url(), &alice_token).await;
    let mallory = client_as(&h.mcp_url(), &mallory_token).await;
    let as_alice = format!("Bearer {alice_token}");
    let as_mallory = format!("Bearer {mallory_token}");
    for (id, template) in [("nb", "notebook"), ("quiet", "quiet")] {
        let r = call(
            &alice,
            "spawn_workspace",
            json!({"id": id, "templateRef": template, "context": {"PROJECT_NAME": "apollo"}}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
    }
    let first = live_pod(&pods, "nb").await.expect("nb's pod");
    let volume = first
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v.iter().find(|v| v.name == "data"))
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone());
    assert_eq!(
        volume.as_deref(),
        Some("ws-nb-data"),
        "the files are on a claim"
    );
    assert!(pvcs.get_opt("ws-nb-data").await.ok().flatten().is_some());
    let r = get(gw.addr, "/route/nb/x", &[("authorization", &as_alice)]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Idle: suspended, not stopped. Its id, files and record stay; no ConfigMap holds the
    // context value.
    eventually("nb and quiet to be suspended", || async {
        suspended(&cms, &pods, "nb").await?;
        suspended(&cms, &pods, "quiet").await
    })
    .await;
    assert!(
        pvcs.get_opt("ws-nb-data").await.ok().flatten().is_some(),
        "files kept"
    );
    let record = secrets
        .get_opt("nogoo9-rec-nb")
        .await
        .ok()
        .flatten()
        .expect("the spawn record");
    let manifest = record
        .data
        .as_ref()
        .and_then(|d| d.get("pod.json"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    assert!(manifest.contains("apollo"), "the record keeps the context");
    let all_cms = cms
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for cm in &all_cms.items {
        let body = serde_json::to_string(cm).unwrap_or_default();
        assert!(
            !body.contains("apollo"),
            "{:?} holds a context value",
            cm.metadata.name
        );
    }
    eventually("the Suspended event", || async {
        (events(&evs, "Suspended", "nb").await > 0).then_some(())
    })
    .await;
    assert_eq!(events(&evs, "Suspended", "nb").await, 1);
    let listed = call(&alice, "list_workspaces", json!({})).await;
    let rows = listed.structured_content.clone().unwrap_or_default()["workspaces"].clone();
    let nb = rows
        .as_array()
        .and_then(|r| r.iter().find(|w| w["id"] == "nb"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(nb["state"], "suspended", "{rows}");
    assert_eq!(nb["wakeOnRequest"], true, "{rows}");
    assert_eq!(nb["template"], "notebook", "{rows}");

    // Strangers wake nothing: no token is 401, another user's token 404 (as if missing).
    let r = get(gw.addr, "/route/nb/x", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = get(gw.addr, "/route/nb/x", &[("authorization", &as_mallory)]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = call(&mallory, "resume_workspace", json!({"id": "nb"})).await;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    let r = call(&mallory, "stop_workspace", json!({"id": "nb"})).await;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    let r = call(
        &mallory,
        "spawn_workspace",
        json!({"id": "nb", "templateRef": "notebook", "context": {"PROJECT_NAME": "heist"}}),
    )
    .await;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    assert!(!any_pod(&pods, "nb").await, "nothing woke it");
    assert_eq!(claim_state(&cms, "nb").await.as_deref(), Some("suspended"));
    assert!(
        secrets
            .get_opt("nogoo9-rec-nb")
            .await
            .ok()
            .flatten()
            .is_some()
    );
    assert!(pvcs.get_opt("ws-nb-data").await.ok().flatten().is_some());

    // Without wake-on-request, even the owner is told to resume it.
    let r = get(gw.addr, "/route/quiet/", &[("authorization", &as_alice)]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "workspace_suspended", "{}", r.body);
    assert!(!any_pod(&pods, "quiet").await);

    // The owner's three concurrent requests share one wake and all get through.
    let woken: Vec<(u16, String)> = futures::future::join_all((0..3).map(|_| {
        let bearer = as_alice.clone();
        async move {
            let r = get(gw.addr, "/route/nb/x", &[("authorization", &bearer)]).await;
            (r.status, r.body)
        }
    }))
    .await;
    assert!(woken.iter().all(|(status, _)| *status == 200), "{woken:?}");
    // The event is written after the pod is made, maybe after the first 200.
    eventually("the Woken event", || async {
        (events(&evs, "Woken", "nb").await > 0).then_some(())
    })
    .await;
    assert_eq!(events(&evs, "Woken", "nb").await, 1, "one wake");
    let second = live_pod(&pods, "nb").await.expect("nb woken");
    assert_ne!(second.metadata.uid, first.metadata.uid, "a new pod");
    let name = second.metadata.name.clone().unwrap_or_default();
    // Its files and its context are as they were: the file has both starts' lines.
    let seen = starts(&pods, &name, 2).await;
    assert_eq!(seen, ["run-apollo", "run-apollo"]);

    // Suspended again when idle; `resume_workspace` brings it back for its owner.
    eventually("nb to be suspended again", || async {
        suspended(&cms, &pods, "nb").await
    })
    .await;
    let r = call(&alice, "resume_workspace", json!({"id": "nb"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let out = r.structured_content.clone().unwrap_or_default();
    assert_eq!(out["status"], "ready", "{out}");
    let third = live_pod(&pods, "nb").await.expect("nb resumed");
    let name = third.metadata.name.clone().unwrap_or_default();
    let seen = starts(&pods, &name, 3).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    let r = call(&alice, "resume_workspace", json!({"id": "nb"})).await;
    assert_eq!(r.is_error, Some(true), "not suspended: {}", text(&r));

    // Its owner's spawn of the id resumes it too (the record's context, not new values).
    eventually("nb to be suspended a third time", || async {
        suspended(&cms, &pods, "nb").await
    })
    .await;
    let r = call(
        &alice,
        "spawn_workspace",
        json!({"id": "nb", "templateRef": "notebook", "context": {"PROJECT_NAME": "other"}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let fourth = live_pod(&pods, "nb").await.expect("nb resumed by a spawn");
    let name = fourth.metadata.name.clone().unwrap_or_default();
    let seen = starts(&pods, &name, 4).await;
    assert_eq!(
        seen.last().map(String::as_str),
        Some("run-apollo"),
        "{seen:?}"
    );

    // Stopping a suspended workspace removes its record, its volume and its id.
    eventually("nb to be suspended a fourth time", || async {
        suspended(&cms, &pods, "nb").await
    })
    .await;
    let r = call(&alice, "stop_workspace", json!({"id": "nb"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        secrets
            .get_opt("nogoo9-rec-nb")
            .await
            .ok()
            .flatten()
            .is_none(),
        "record gone"
    );
    assert!(
        pvcs.get_opt("ws-nb-data").await.ok().flatten().is_none(),
        "volume gone"
    );
    assert_eq!(claim_state(&cms, "nb").await, None, "id released");
    eventually("the gateway to forget nb", || async {
        let r = get(gw.addr, "/route/nb/x", &[("authorization", &as_alice)]).await;
        (r.status == 404).then_some(())
    })
    .await;
    let _ = alice.cancel().await;
    let _ = mallory.cancel().await;
    drop(gw);
    h.stop().await;
}

/// Control resumes a woken workspace by routing it to a new pod that is not Ready yet.
/// A request that arrives in that window, while another waits for the wake, joins the
/// wait and gets through with it (it was answered 503 `workspace_not_ready` before);
/// a starting workspace nobody is waking for is still told to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_finds_the_woken_pod_starting_joins_the_wait() {
    use crate::harness::{TestGateway, control, echo_app, publish, route_to};
    use shared::route::RouteState;
    use shared::table::Change;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctl = control();
    let (wakes_tx, mut wakes) = tokio::sync::mpsc::unbounded_channel();
    ctl.publisher.on_wake(wakes_tx);
    let stop = tokio_util::sync::CancellationToken::new();
    let up = echo_app(&stop).await;
    let gw = TestGateway::start(&ctl.socket).await;
    let with = |state: RouteState, suspended: bool, id: &str| {
        let mut r = route_to(id, up, None);
        r.state = state;
        if state != RouteState::Ready {
            r.addr = None;
        }
        r.web.suspended = suspended;
        r.web.wake_on_request = true;
        Change::Upsert { route: r }
    };
    publish(
        &ctl,
        vec![
            with(RouteState::Pending, true, "nap"),
            with(RouteState::Pending, false, "fresh"),
        ],
    )
    .await;

    // The first request waits for the wake, which the gateway asks control for.
    let first = tokio::spawn(async move { get(gw.addr, "/route/nap/first", &[]).await });
    let asked = tokio::time::timeout(std::time::Duration::from_secs(10), wakes.recv())
        .await
        .unwrap_or_else(|_| panic!("the gateway never asked to wake nap"));
    assert_eq!(asked.map(|id| id.to_string()).as_deref(), Some("nap"));
    // Control resumed it: the new pod is starting.
    publish(&ctl, vec![with(RouteState::Pending, false, "nap")]).await;
    let second = tokio::spawn(async move { get(gw.addr, "/route/nap/second", &[]).await });
    let nap = shared::ids::WorkspaceId::parse("nap").unwrap_or_else(|e| panic!("{e}"));
    eventually("the second request to join the wait", || async {
        (gw.waker.waiters(&nap) == 2).then_some(())
    })
    .await;
    // A starting workspace nobody waits for: told to retry, at once.
    let r = get(gw.addr, "/route/fresh/", &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "workspace_not_ready", "{}", r.body);
    // The pod is Ready: both requests get through.
    publish(&ctl, vec![with(RouteState::Ready, false, "nap")]).await;
    for (name, task) in [("first", first), ("second", second)] {
        let r = task.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "{name}: {}", r.body);
    }
    stop.cancel();
}
