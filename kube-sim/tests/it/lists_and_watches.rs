//! list and watch semantics through kube-rs: selectors, pagination over a consistent
//! snapshot, exact reads, watch events, bookmarks, and relist after 410.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams, VersionMatch, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube_sim::{Faults, SimConfig};
use serde_json::json;

use crate::harness::{self, api_code, eventually};

fn labelled_cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("cm")
}

#[tokio::test]
async fn label_and_field_selectors() {
    let sim = harness::sim().await;
    let client = sim.client().await.expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, labels) in [
        ("a", json!({"env": "prod", "tier": "web"})),
        ("b", json!({"env": "dev"})),
        ("c", json!({"tier": "db"})),
    ] {
        cms.create(&PostParams::default(), &labelled_cm(name, labels))
            .await
            .expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    let q = |sel: &str| ListParams::default().labels(sel);
    assert_eq!(names(cms.list(&q("env=prod")).await.expect("=")), ["a"]);
    assert_eq!(
        names(cms.list(&q("env!=prod,env")).await.expect("!=")),
        ["b"]
    );
    assert_eq!(
        names(cms.list(&q("env in (prod,dev)")).await.expect("in")),
        ["a", "b"]
    );
    assert_eq!(
        names(cms.list(&q("env notin (prod),tier")).await.expect("notin")),
        ["c"]
    );
    assert_eq!(
        names(cms.list(&q("!env")).await.expect("!exists")),
        ["c", "kube-root-ca.crt"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .expect("field")
        ),
        ["b"]
    );
    let err = cms.list(&q("env in prod")).await.expect_err("bad selector");
    assert_eq!(api_code(&err), Some(400));
    let err = cms
        .list(&ListParams::default().fields("spec.nodeName=x"))
        .await
        .expect_err("unsupported field");
    assert_eq!(api_code(&err), Some(400));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &harness::node_workspace_pod("w"))
        .await
        .expect("pod");
    harness::wait_ready(&pods, "w").await;
    let running = pods
        .list(&ListParams::default().fields("status.phase=Running,spec.nodeName=kube-sim"))
        .await
        .expect("pod fields");
    assert_eq!(running.items.len(), 1);
    let all: Api<Pod> = Api::all(client);
    assert_eq!(
        all.list(&ListParams::default().fields("metadata.namespace=kube-system"))
            .await
            .expect("ns field")
            .items
            .len(),
        0
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn pagination_reads_one_consistent_snapshot() {
    let sim = harness::sim().await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await.expect("client"), "default");
    for i in 0..7 {
        cms.create(
            &PostParams::default(),
            &labelled_cm(&format!("cm-{i}"), json!({"batch": "1"})),
        )
        .await
        .expect("create");
    }
    let first = cms
        .list(&ListParams::default().labels("batch=1").limit(3))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("continue token");
    let rv = first.metadata.resource_version.clone().expect("rv");
    // Changes after the first page are invisible to the rest of the listing.
    cms.create(
        &PostParams::default(),
        &labelled_cm("cm-9", json!({"batch": "1"})),
    )
    .await
    .expect("late create");
    let mut seen: Vec<String> = first
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let mut next = Some(token);
    while let Some(token) = next {
        let page = cms
            .list(
                &ListParams::default()
                    .labels("batch=1")
                    .limit(3)
                    .continue_token(&token),
            )
            .await
            .expect("page");
        assert_eq!(page.metadata.resource_version.as_deref(), Some(rv.as_str()));
        seen.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        next = page.metadata.continue_.clone().filter(|t| !t.is_empty());
    }
    assert_eq!(seen, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());

    // An exact read sees the past (a version newer than the store is a 504: api_errors).
    let past = cms
        .list(
            &ListParams::default()
                .labels("batch=1")
                .at(&rv)
                .matching(VersionMatch::Exact),
        )
        .await
        .expect("exact");
    assert_eq!(past.items.len(), 7);
    sim.shutdown().await;
}

#[tokio::test]
async fn continue_tokens_and_watches_expire_with_the_history() {
    let mut config = SimConfig::for_tests();
    config.history = 3;
    let sim = harness::sim_with(config).await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await.expect("client"), "default");
    for i in 0..4 {
        cms.create(
            &PostParams::default(),
            &labelled_cm(&format!("cm-{i}"), json!({})),
        )
        .await
        .expect("create");
    }
    let first = cms
        .list(&ListParams::default().limit(1))
        .await
        .expect("page 1");
    let token = first.metadata.continue_.clone().expect("token");
    let rv = first.metadata.resource_version.clone().expect("rv");
    for i in 10..20 {
        cms.create(
            &PostParams::default(),
            &labelled_cm(&format!("cm-{i}"), json!({})),
        )
        .await
        .expect("create");
    }
    let err = cms
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .expect_err("expired continue");
    assert_eq!(
        (api_code(&err), harness::api_reason(&err).as_str()),
        (Some(410), "Expired")
    );

    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    match stream.try_next().await.expect("event") {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_events_follow_the_selector() {
    let sim = harness::sim().await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await.expect("client"), "default");
    let start = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(&WatchParams::default().labels("app=x").timeout(10), &start)
        .await
        .expect("watch")
        .boxed();
    cms.create(
        &PostParams::default(),
        &labelled_cm("in", json!({"app": "x"})),
    )
    .await
    .expect("create");
    cms.create(
        &PostParams::default(),
        &labelled_cm("out", json!({"app": "y"})),
    )
    .await
    .expect("create");
    // Moving out of the selection is a DELETED for this watcher.
    let pp = kube::api::PatchParams::default();
    cms.patch(
        "in",
        &pp,
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"app": "z"}}})),
    )
    .await
    .expect("relabel");
    cms.patch(
        "out",
        &pp,
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .expect("relabel");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        match ev {
            WatchEvent::Added(c) => {
                seen.push(format!("ADDED {}", c.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Modified(c) => {
                seen.push(format!("MODIFIED {}", c.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Deleted(c) => {
                seen.push(format!("DELETED {}", c.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED in", "DELETED in", "ADDED out"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn bookmarks_carry_the_latest_version() {
    let sim = harness::sim().await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await.expect("client"), "default");
    let start = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            }
            .timeout(10),
            &start,
        )
        .await
        .expect("watch")
        .boxed();
    cms.create(&PostParams::default(), &labelled_cm("x", json!({})))
        .await
        .expect("create");
    let mut last_rv = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("bookmark in time")
            .expect("ok")
            .expect("open")
        {
            WatchEvent::Added(c) => last_rv = c.metadata.resource_version.unwrap_or_default(),
            WatchEvent::Bookmark(b) if last_rv.is_empty() => {
                assert_eq!(b.metadata.resource_version, start)
            }
            WatchEvent::Bookmark(b) => {
                assert_eq!(b.metadata.resource_version, last_rv);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn reflector_relists_after_410_and_stays_correct() {
    let sim = harness::sim().await;
    let client = sim.client().await.expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // Every watch closes after a second and every resume is answered 410: the watcher
    // must relist to stay correct.
    sim.set_faults(Faults {
        watch_close_after_secs: 1,
        expire_resumed_watches: true,
        ..Default::default()
    })
    .expect("faults");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let inits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = inits.clone();
    let stream = watcher(cms.clone(), watcher::Config::default().labels("app=r"))
        .inspect(move |ev| {
            if matches!(ev, Ok(watcher::Event::Init)) {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("ready");
    for i in 0..3 {
        cms.create(
            &PostParams::default(),
            &labelled_cm(&format!("r{i}"), json!({"app": "r"})),
        )
        .await
        .expect("create");
    }
    eventually(20, "two relists", || async {
        (inits.load(std::sync::atomic::Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    cms.create(
        &PostParams::default(),
        &labelled_cm("r9", json!({"app": "r"})),
    )
    .await
    .expect("create");
    cms.delete("r0", &Default::default()).await.expect("delete");
    eventually(20, "reflector to converge", || async {
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        names.sort();
        (names == ["r1", "r2", "r9"]).then_some(())
    })
    .await;
    task.abort();
    sim.shutdown().await;
}
