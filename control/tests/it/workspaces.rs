//! The workspace lifecycle over MCP against the simulated cluster: templates, spawn with
//! required context (init container and IAM service account), idempotent and concurrent
//! spawns, the route published and acked, stop (pre-stop hook, service account removed).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use shared::ids::WorkspaceId;
use shared::route::RouteState;

use crate::harness::{call, plain_client, start, structured, text};

fn node_template(name: &str) -> ConfigMap {
    let mut cm = control::dev::demo_template();
    cm.metadata.name = Some(name.to_string());
    cm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_list_and_stop_a_workspace_from_the_brief_template() {
    let h = start(|c| c.gateway_url = Some("http://gw.test:8080".into())).await;
    let kube = h.kube().await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), "default");
    cms.create(
        &PostParams::default(),
        &node_template("node-workspace-template"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut broken = node_template("broken");
    broken.data = Some([("spec".to_string(), "{\"containers\": \"nope\"}".to_string())].into());
    cms.create(&PostParams::default(), &broken)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let url = h.mcp_url();
    let client = plain_client(&url).await;

    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(tools.iter().any(|t| t == "spawn_workspace"), "{tools:?}");
    let r = call(&client, "list_templates", json!({})).await;
    let s = r.structured_content.clone().unwrap_or_default();
    assert_eq!(s["templates"][0]["name"], "node-workspace-template");
    assert_eq!(
        s["templates"][0]["requiredContext"],
        json!(["PROJECT_NAME", "REPO_URL"])
    );
    assert_eq!(
        s["skipped"][0]["name"], "broken",
        "an invalid template is skipped and reported"
    );
    assert!(
        text(&r).contains("skipped invalid template broken"),
        "{}",
        text(&r)
    );
    let r = call(
        &client,
        "get_template",
        json!({"name": "node-workspace-template"}),
    )
    .await;
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["tag"].clone()),
        Some(json!("node-20"))
    );

    // Template writes: validated, Pod Security, only template ConfigMaps touched.
    let spec = json!({"containers": [{"name": "w", "image": "python:3"}]});
    let r = call(
        &client,
        "create_template",
        json!({"name": "made", "description": "d1", "tag": "v1", "spec": spec}),
    )
    .await;
    assert_eq!(text(&r), "Created template made");
    let r = call(&client, "create_template", json!({"name": "bad", "spec": {"hostPID": true, "containers": [{"name": "w", "image": "x"}]}})).await;
    assert!(text(&r).contains("spec.hostPID"), "{}", text(&r));
    let r = call(&client, "create_template", json!({"name": "nospec"})).await;
    assert!(text(&r).contains("spec is required"), "{}", text(&r));
    let r = call(
        &client,
        "update_template",
        json!({"name": "made", "description": "d2", "tag": ""}),
    )
    .await;
    assert_eq!(text(&r), "Updated template made");
    let r = call(&client, "get_template", json!({"name": "made"})).await;
    let s = r.structured_content.clone().unwrap_or_default();
    assert_eq!(
        (s["description"].clone(), s["tag"].clone()),
        (json!("d2"), json!(""))
    );
    for tool in ["update_template", "delete_template"] {
        let r = call(&client, tool, json!({"name": "kube-root-ca.crt"})).await;
        assert_eq!(
            r.structured_content.as_ref().map(|v| v["code"].clone()),
            Some(json!(403)),
            "{tool}: {}",
            text(&r)
        );
    }
    assert!(
        cms.get_opt("kube-root-ca.crt")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some(),
        "a non-template ConfigMap is left alone"
    );
    let r = call(&client, "create_pod_from_template", json!({"templateRef": "default/made", "name": "plain", "containerOverrides": [{"name": "w", "image": "python:3.12"}], "topLevelOverrides": {"labels": {"from": "template"}}})).await;
    assert_eq!(text(&r), "Created pod plain in namespace default");
    let plain = Api::<Pod>::namespaced(kube.clone(), "default")
        .get("plain")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plain
            .spec
            .and_then(|s| s.containers[0].image.clone())
            .as_deref(),
        Some("python:3.12")
    );
    assert!(
        !plain
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("nogoo9/type"),
        "a plain pod is not a workspace"
    );
    let r = call(&client, "create_pod_from_template", json!({"templateRef": "made", "name": "hijack", "topLevelOverrides": {"labels": {"nogoo9/workspace-id": "demo"}}})).await;
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["code"].clone()),
        Some(json!(403)),
        "{}",
        text(&r)
    );
    let r = call(&client, "delete_template", json!({"name": "made"})).await;
    assert_eq!(text(&r), "Deleted template made");

    // Missing context: an error listing the keys, and nothing created.
    let r = call(&client, "spawn_workspace", json!({"id": "demo", "templateRef": "node-workspace-template", "context": {"PROJECT_NAME": "p"}})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("Missing required context variables: REPO_URL"),
        "{}",
        text(&r)
    );
    let sas: Api<ServiceAccount> = Api::namespaced(kube.clone(), "default");
    assert!(
        sas.get_opt("ws-sa-demo")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "no orphan service account"
    );
    let r = call(
        &client,
        "spawn_workspace",
        json!({"id": "Bad_Id", "templateRef": "node-workspace-template"}),
    )
    .await;
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["code"].clone()),
        Some(json!(400))
    );
    let r = call(&client, "spawn_workspace", json!({"id": "evil", "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x"}]}})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains(
            "violates Pod Security \"baseline\": spec.hostNetwork: host namespaces are forbidden"
        ),
        "{}",
        text(&r)
    );
    let r = call(&client, "spawn_workspace", json!({"id": "x"})).await;
    assert!(text(&r).contains("Either templateRef or spec must be provided"));

    // Two concurrent spawns of one id make one pod, and both return when it is routable.
    let context = json!({"PROJECT_NAME": "demo", "REPO_URL": "https://example.com/r.git"});
    let spawn = json!({"id": "demo", "templateRef": "node-workspace-template", "context": context});
    let (a, b) = tokio::join!(
        call(&client, "spawn_workspace", spawn.clone()),
        call(&client, "spawn_workspace", spawn.clone())
    );
    for r in [&a, &b] {
        assert_ne!(r.is_error, Some(true), "{}", text(r));
        let s = r.structured_content.clone().unwrap_or_default();
        assert_eq!(s["status"], "ready");
        assert_eq!(s["url"], "http://gw.test:8080/route/demo/");
        assert_eq!(s["podName"], "ws-anonymous-demo");
    }
    let existing: Vec<bool> = [&a, &b]
        .iter()
        .map(|r| {
            r.structured_content.clone().unwrap_or_default()["existing"]
                .as_bool()
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(
        existing.iter().filter(|e| **e).count(),
        1,
        "exactly one of the two created the pod"
    );
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let listed = pods
        .list(&ListParams::default().labels("nogoo9/workspace-id=demo"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.items.len(), 1);
    let pod = &listed.items[0];
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.init_containers.as_ref().map(|i| i[0].name.as_str()),
        Some("spawner-init")
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("ws-sa-demo"));
    assert_eq!(spec.termination_grace_period_seconds, Some(120));
    assert!(
        sas.get_opt("ws-sa-demo")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some(),
        "the IAM service account exists"
    );
    let route = h
        .control
        .publisher
        .table()
        .get(&WorkspaceId::parse("demo").unwrap_or_else(|e| panic!("{e}")))
        .cloned()
        .unwrap_or_else(|| panic!("route"));
    assert_eq!(route.state, RouteState::Ready);
    assert_eq!(route.pod_uid, pod.metadata.uid.clone().unwrap_or_default());

    let r = call(
        &client,
        "list_workspaces",
        json!({"jwtPayload": {"sub": "mallory"}}),
    )
    .await;
    assert_eq!(
        r.structured_content
            .as_ref()
            .map(|v| v["workspaces"][0]["id"].clone()),
        Some(json!("demo"))
    );
    assert!(
        text(&r).starts_with("ID\tNAME\tSTATUS\ndemo\tws-anonymous-demo\tRunning"),
        "{}",
        text(&r)
    );

    let r = call(&client, "stop_workspace", json!({"id": "demo"})).await;
    assert_eq!(text(&r), "Stopped workspace demo (Pod: ws-anonymous-demo)");
    assert_eq!(
        r.structured_content,
        Some(json!({"id": "demo", "status": "terminating"}))
    );
    assert!(
        sas.get_opt("ws-sa-demo")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "the service account went with the workspace"
    );
    tokio::time::timeout(Duration::from_secs(20), async {
        while pods
            .get_opt("ws-anonymous-demo")
            .await
            .ok()
            .flatten()
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("pod removed"));
    let logs_gone = h
        .control
        .publisher
        .table()
        .get(&WorkspaceId::parse("demo").unwrap_or_else(|e| panic!("{e}")))
        .is_none();
    assert!(logs_gone, "the route is withdrawn");
    let r = call(&client, "stop_workspace", json!({"id": "demo"})).await;
    assert_eq!(
        (r.is_error, text(&r)),
        (
            Some(true),
            "Error: workspace demo not found in namespace default".to_string()
        )
    );

    let _ = client.cancel().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routing_urls_and_ids_that_would_read_as_ports() {
    let h = start(|c| {
        c.gateway_url = Some("https://gw.example.com:8443".into());
        c.workspace_domain = Some("ws.example.com".into());
        // Control's own prefix has nothing to do with workspace URLs.
        c.http.base_url = "/nocrd9".into();
    })
    .await;
    let client = plain_client(&h.mcp_url().replace("/mcp", "/nocrd9/mcp")).await;
    let spec = json!({"containers": [{"name": "app", "image": "node:20-alpine", "ports": [{"containerPort": 3000}]}]});
    let r = call(
        &client,
        "spawn_workspace",
        json!({"id": "hosted", "spec": spec, "wait": false}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(structured(&r)["url"], "https://hosted.ws.example.com:8443/");
    let listed = structured(&call(&client, "list_workspaces", json!({})).await);
    assert_eq!(
        listed["workspaces"][0]["url"],
        "https://hosted.ws.example.com:8443/"
    );

    // `8080-app.ws.example.com` is port 8080 of `app`: such an id is refused, nothing made.
    let pods: Api<Pod> = Api::namespaced(h.kube().await, "default");
    let before = pods
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .len();
    let r = call(
        &client,
        "spawn_workspace",
        json!({"id": "8080-app", "spec": spec, "wait": false}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("would read as port 8080 of another workspace"),
        "{}",
        text(&r)
    );
    let after = pods
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .len();
    assert_eq!(before, after);
    let cms: Api<ConfigMap> = Api::namespaced(h.kube().await, "default");
    assert!(
        cms.get_opt("nogoo9-ws-8080-app")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "no claim either"
    );

    // A bad serving annotation is named before anything is created.
    let r = call(
        &client,
        "create_template",
        json!({"name": "odd", "spec": spec, "annotations": {"nogoo9/upstream-host": "container"}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let r = call(
        &client,
        "spawn_workspace",
        json!({"id": "odd", "templateRef": "odd", "wait": false}),
    )
    .await;
    assert!(
        text(&r).contains(
            "annotation nogoo9/upstream-host must be \"public\" or \"pod\", got \"container\""
        ),
        "{}",
        text(&r)
    );
    assert!(
        pods.get_opt("ws-anonymous-odd")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
}
