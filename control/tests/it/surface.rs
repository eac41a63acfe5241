//! The rest of the MCP surface against the simulated cluster: `pod-template://`
//! resources, `list_registry_images` against a registry on loopback (pages, a failing
//! repository), `--read-only`, and progress notifications during a spawn.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use kube_sim::SimConfig;
use rmcp::model::{
    CallToolRequestParams, NumberOrString, ProgressNotificationParam, ProgressToken,
    RequestMetaObject,
};
use rmcp::service::NotificationContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

use crate::harness::{call, plain_client, start, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_resources() {
    let s = start(|_| {}).await;
    let kube = s.kube().await;
    let cms: Api<ConfigMap> = Api::namespaced(kube, "default");
    cms.create(&PostParams::default(), &control::dev::demo_template())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plain: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "secret-ish"}, "data": {"spec": "{\"x\":1}"}}),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    cms.create(&PostParams::default(), &plain)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = plain_client(&s.mcp_url()).await;

    let templates = client
        .list_all_resource_templates()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        templates[0].uri_template,
        "pod-template://{namespace}/{name}"
    );
    let resources = client
        .list_all_resources()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "ui://nogoo9/app",
            "pod-template://default/node-workspace-template"
        ],
        "the UI and the template ConfigMaps (not other ConfigMaps) are listed"
    );
    assert_eq!(
        resources[1].description.as_deref(),
        Some("A standard Node.js development sandbox with S3 storage sync")
    );
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "pod-template://default/node-workspace-template",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body = serde_json::to_value(&read.contents[0]).unwrap_or_default();
    assert_eq!(body["mimeType"], "application/json");
    let spec: serde_json::Value =
        serde_json::from_str(body["text"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(spec["containers"][0]["image"], "node:20-alpine");
    // A ConfigMap that is not a template cannot be read through the resource.
    for uri in [
        "pod-template://default/secret-ish",
        "pod-template://default/missing",
        "pod-template://nope",
        "file:///etc/passwd",
    ] {
        let err = client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
            .await
            .expect_err(uri);
        assert!(!err.to_string().is_empty(), "{uri}");
    }
    let _ = client.cancel().await;
    s.stop().await;
}

/// A registry speaking the distribution API: two catalog pages, one repository whose
/// tags cannot be read.
async fn registry() -> String {
    use axum::extract::{Path, Query};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let app = axum::Router::new()
        .route(
            "/v2/_catalog",
            axum::routing::get(
                |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    if !q.contains_key("last") {
                        (
                            [("link", "</v2/_catalog?last=team%2Fapi&n=2>; rel=\"next\"")],
                            axum::Json(json!({"repositories": ["base/node", "team/api"]})),
                        )
                            .into_response()
                    } else {
                        axum::Json(json!({"repositories": ["team/broken", "team/web"]}))
                            .into_response()
                    }
                },
            ),
        )
        .route(
            "/v2/{*path}",
            axum::routing::get(|Path(path): Path<String>| async move {
                let repo = path.trim_end_matches("/tags/list").to_string();
                match repo.as_str() {
                    "team/broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    _ => {
                        axum::Json(json!({"name": repo, "tags": ["1.0", "latest"]})).into_response()
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_images_read_only_and_disabled_tools() {
    let reg = registry().await;
    let s = start(|c| {
        c.registry_url = Some(reg.clone());
        c.read_only = true;
    })
    .await;
    let client = plain_client(&s.mcp_url()).await;
    let host = reg.trim_start_matches("http://");

    let r = call(&client, "list_registry_images", json!({})).await;
    let out = r.structured_content.clone().unwrap_or_default();
    let images: Vec<String> = serde_json::from_value(out["images"].clone()).unwrap_or_default();
    assert_eq!(
        images.len(),
        6,
        "both catalog pages are followed: {images:?}"
    );
    assert_eq!(images[0], format!("{host}/base/node:1.0"));
    assert_eq!(out["failed"][0]["repository"], "team/broken");
    assert!(
        text(&r).contains("could not list tags of team/broken"),
        "{}",
        text(&r)
    );
    let r = call(
        &client,
        "list_registry_images",
        json!({"repository": "team/", "limit": 2}),
    )
    .await;
    let out = r.structured_content.clone().unwrap_or_default();
    assert_eq!(
        out["images"],
        json!([
            format!("{host}/team/api:1.0"),
            format!("{host}/team/api:latest")
        ])
    );
    assert_eq!(out["truncated"], true);
    let r = call(&client, "list_registry_images", json!({"limit": 0})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("limit must be at least 1"),
        "{}",
        text(&r)
    );

    // --read-only: only read tools are listed, and a write is refused with the reason.
    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for t in &tools {
        assert!(
            control::tools::find(t).is_some_and(|tool| !tool.writes),
            "{t} is listed in read-only mode"
        );
    }
    assert!(tools.iter().any(|t| t == "list_workspaces"), "{tools:?}");
    let r = call(
        &client,
        "spawn_workspace",
        json!({"id": "w1", "templateRef": "x"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("--read-only"), "{}", text(&r));
    let _ = client.cancel().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_registry_configured_is_an_answer_not_an_error() {
    let s = start(|_| {}).await;
    let client = plain_client(&s.mcp_url()).await;
    let r = call(&client, "list_registry_images", json!({})).await;
    assert_ne!(r.is_error, Some(true));
    assert!(
        text(&r).starts_with("No registry configured. Set REGISTRY_URL"),
        "{}",
        text(&r)
    );
    let _ = client.cancel().await;
    s.stop().await;
}

#[derive(Clone, Default)]
struct ProgressRecorder(Arc<Mutex<Vec<ProgressNotificationParam>>>);

impl rmcp::ClientHandler for ProgressRecorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(params);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_reports_progress_until_routable() {
    let s = start(|_| {}).await;
    let recorder = ProgressRecorder::default();
    let client = recorder
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(s.mcp_url()))
        .await
        .expect("an MCP session");
    let mut req = CallToolRequestParams::new("spawn_workspace").with_arguments(
        json!({"id": "p1", "spec": {"containers": [{"name": "w", "image": "python:3"}]}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    req.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::Number(7),
    )));
    let r = tokio::time::timeout(Duration::from_secs(60), client.call_tool(req))
        .await
        .unwrap_or_else(|_| panic!("spawn timed out"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    // Notifications may trail the result on the wire: give them a moment.
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if seen.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // rmcp's client runs each notification's handler on its own task, so they can be
    // recorded out of order (seen in CI); the server sends them in order.
    seen.sort_by(|a, b| a.progress.total_cmp(&b.progress));
    let steps: Vec<f64> = seen.iter().map(|p| p.progress).collect();
    assert_eq!(steps, [1.0, 2.0, 3.0, 4.0], "{seen:?}");
    assert!(seen.iter().all(|p| p.total == Some(4.0)), "{seen:?}");
    eprintln!(
        "tokens: {:?}",
        seen.iter().map(|p| &p.progress_token).collect::<Vec<_>>()
    );
    assert!(
        seen[3]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("routable"),
        "{seen:?}"
    );
    let _ = client.cancel().await;
    s.stop().await;
}

/// A spawn that times out says why, from the pod: here the cluster has no pod address
/// left (a /30 holds two pods).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_timeout_names_the_pods_reason() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = SimConfig::for_tests();
    config.pod_cidr.prefix = 30;
    let h = control::testkit::start(config, |_| {}).await;
    let url = h.mcp_url();
    let client = plain_client(&url).await;
    let spec = json!({"containers": [{"name": "app", "image": "node:20-alpine"}]});
    for id in ["fits-1", "fits-2"] {
        let r = call(&client, "spawn_workspace", json!({"id": id, "spec": spec})).await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
    }
    let r = call(
        &client,
        "spawn_workspace",
        json!({"id": "no-room", "spec": spec, "waitTimeoutSeconds": 1}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.contains("was not ready within 1s") && t.contains("pod CIDR has no free address"),
        "{t}"
    );
    let _ = client.cancel().await;
    h.stop().await;
}
