//! Auth on the control endpoint: no token → 401 pointing at the RFC 9728 document;
//! workspace tools act for the token's identity only (the `jwtPayload` argument is
//! ignored); a user sees, stops and reuses only their own workspaces.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::harness::{call, client, raw, start, structured, text, with_hs256};

const SECRET: &str = "control-auth-test-secret-0123456789abcdef";

fn token(sub: &str, ttl: i64) -> String {
    crate::harness::token(SECRET, sub, ttl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_act_only_on_their_own_workspaces() {
    let h = start(|c| with_hs256(c, SECRET)).await;
    let kube = h.kube().await;
    let addr = h.control.http_addr.expect("http");
    let url = format!("http://{addr}/mcp");

    // No token, or a bad one: 401 with the challenge, before any MCP processing.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let post = |auth: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: ctl.test\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{init}",
            init.len()
        )
    };
    let r = raw(addr, &post("")).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(
        r.contains("www-authenticate: Bearer resource_metadata=\"http://ctl.test/.well-known/oauth-protected-resource\""),
        "{r}"
    );
    assert!(r.contains("rel=\"oauth-protected-resource\""), "{r}");
    assert!(r.contains("\"reason\":\"missing_token\""), "{r}");
    let expired = token("alice", -600);
    let r = raw(addr, &post(&format!("Authorization: Bearer {expired}\r\n"))).await;
    assert!(
        r.starts_with("HTTP/1.1 401") && r.contains("expired_token"),
        "{r}"
    );
    let r = raw(addr, "GET /.well-known/oauth-protected-resource/mcp HTTP/1.1\r\nHost: ctl.test\r\nConnection: close\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("\"resource\":\"http://ctl.test/mcp\""),
        "{r}"
    );
    let r = raw(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: ctl.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "health needs no token: {r}");

    let alice = client(&url, &token("alice", 600)).await;
    let bob = client(&url, &token("bob", 600)).await;
    let spec = json!({"containers": [{"name": "w", "image": "python:3"}]});

    // Alice spawns, claiming to be mallory in jwtPayload: the token wins.
    let r = call(
        &alice,
        "spawn_workspace",
        json!({"id": "a1", "spec": spec, "wait": false, "jwtPayload": {"sub": "mallory"}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let pod = pods
        .list(&ListParams::default().labels("nogoo9/workspace-id=a1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .remove(0);
    let owner = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("nogoo9/user-sub"))
        .cloned();
    assert_eq!(owner.as_deref(), Some("alice"));
    assert_eq!(pod.metadata.name.as_deref(), Some("ws-alice-a1"));

    // Bob cannot see, stop or take over alice's workspace.
    let r = call(&bob, "list_workspaces", json!({})).await;
    assert_eq!(structured(&r)["workspaces"], json!([]), "{}", text(&r));
    let r = call(
        &bob,
        "stop_workspace",
        json!({"id": "a1", "jwtPayload": {"sub": "alice"}}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        text(&r),
        "Error: workspace a1 not found in namespace default"
    );
    let r = call(
        &bob,
        "spawn_workspace",
        json!({"id": "a1", "spec": spec, "wait": false}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("already taken"), "{}", text(&r));
    let r = call(
        &bob,
        "spawn_workspace",
        json!({"id": "b1", "spec": spec, "wait": false}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));

    // Nor through the pod tools: her pod looks missing to bob.
    for (tool, args) in [
        ("get_pod", json!({"name": "ws-alice-a1"})),
        ("get_pod_logs", json!({"name": "ws-alice-a1"})),
        ("delete_pod", json!({"name": "ws-alice-a1"})),
        (
            "patch_pod",
            json!({"name": "ws-alice-a1", "patch": {"metadata": {"labels": {"x": "y"}}}}),
        ),
    ] {
        let r = call(&bob, tool, args).await;
        assert_eq!(r.is_error, Some(true), "{tool}");
        assert_eq!(
            text(&r),
            "Error: pod ws-alice-a1 not found in namespace default",
            "{tool}: like a missing pod"
        );
    }
    let r = call(&bob, "list_pods", json!({})).await;
    let names: Vec<String> = structured(&r)["pods"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(names.iter().any(|n| n == "ws-bob-b1"), "{names:?}");
    assert!(!names.iter().any(|n| n == "ws-alice-a1"), "{names:?}");
    let r = call(&alice, "get_pod", json!({"name": "ws-alice-a1"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));

    // Each sees their own; alice's second spawn of a1 returns it.
    let r = call(&alice, "list_workspaces", json!({})).await;
    let rows = structured(&r)["workspaces"].clone();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["id"], "a1");
    assert_eq!(rows[0]["owner"], "alice");
    let r = call(
        &alice,
        "spawn_workspace",
        json!({"id": "a1", "spec": spec, "wait": false}),
    )
    .await;
    assert_eq!(structured(&r)["existing"], true, "{}", text(&r));
    let r = call(&alice, "stop_workspace", json!({"id": "a1"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));

    let _ = alice.cancel().await;
    let _ = bob.cancel().await;
    h.stop().await;
}
