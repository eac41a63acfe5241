//! The MCP server over streamable HTTP and stdio, with rmcp's client, against the
//! simulated cluster: tool listing, results (text + structured), and error results for
//! bad input and Kubernetes failures.

use std::time::Duration;

use control::config::{ControlConfig, Mode};
use control::run::Control;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube_sim::{Sim, SimConfig};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

use crate::harness::{call, plain_client, start, text};

#[tokio::test]
async fn pod_tools_over_streamable_http() {
    let s = start(|_| {}).await;
    let pods: Api<Pod> = Api::namespaced(s.kube().await, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "agent-box", "labels": {"app": "demo"}},
        "spec": {"containers": [{"name": "agent", "image": "local", "command": ["sh", "-c", "echo hello from the agent; sleep 30"]}]}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let url = format!("http://{}/mcp", s.control.http_addr.expect("http"));
    let client = plain_client(&url).await;
    let tools = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "check_permissions",
            "create_pod",
            "create_pod_from_template",
            "create_template",
            "current_namespace",
            "delete_pod",
            "delete_template",
            "get_pod",
            "get_pod_logs",
            "get_template",
            "keepalive_workspace",
            "list_namespaces",
            "list_pods",
            "list_registry_images",
            "list_templates",
            "list_workspaces",
            "patch_pod",
            "resume_workspace",
            "spawn_workspace",
            "stop_workspace",
            "update_template"
        ]
    );
    let list_pods = tools
        .iter()
        .find(|t| t.name == "list_pods")
        .unwrap_or_else(|| panic!("list_pods"));
    assert_eq!(
        list_pods
            .annotations
            .as_ref()
            .and_then(|a| a.read_only_hint),
        Some(true)
    );

    let r = call(&client, "current_namespace", json!({})).await;
    assert_eq!(text(&r), "Namespace: default\nMode: cluster\nRole: admin");
    assert_eq!(
        r.structured_content,
        Some(
            json!({"namespace": "default", "mode": "cluster", "role": "admin",
                    "workspaceNamespace": "default", "templateNamespace": "default"})
        )
    );

    let r = call(&client, "list_pods", json!({"labelSelector": "app=demo"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        text(&r).starts_with("NAME\tPHASE\tREADY\tRESTARTS\tPOD-IP\tNODE\nagent-box\t"),
        "{}",
        text(&r)
    );
    let structured = r.structured_content.unwrap_or_default();
    assert_eq!(structured["pods"][0]["name"], "agent-box");
    assert_eq!(structured["pods"][0]["total"], 1);

    // Logs default to the container named "agent".
    let logs = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let r = call(&client, "get_pod_logs", json!({"name": "agent-box"})).await;
            if text(&r).contains("hello from the agent") {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("logs"));
    assert_eq!(
        logs.structured_content,
        Some(json!({"logs": "hello from the agent\n"}))
    );

    let r = call(&client, "get_pod", json!({"name": "agent-box"})).await;
    assert_eq!(
        r.structured_content
            .as_ref()
            .map(|v| v["pod"]["metadata"]["name"].clone()),
        Some(json!("agent-box"))
    );

    // Errors the agent can act on: tool results with a code and a message.
    let r = call(&client, "get_pod", json!({"name": "nope"})).await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["code"].clone()),
        Some(json!(404))
    );
    assert_eq!(text(&r), "Error: pod nope not found in namespace default");
    let r = call(&client, "list_pods", json!({"limit": 0})).await;
    assert_eq!(
        (
            r.is_error,
            r.structured_content.as_ref().map(|v| v["code"].clone())
        ),
        (Some(true), Some(json!(400)))
    );
    assert!(text(&r).contains("limit must be greater than 0"));
    let r = call(&client, "list_pods", json!({"namespace": "Not_Valid"})).await;
    assert!(
        text(&r).contains("is not a valid namespace name"),
        "{}",
        text(&r)
    );
    let r = call(&client, "list_pods", json!({"labelSelector": "a in b"})).await;
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["code"].clone()),
        Some(json!(400))
    );
    let r = client
        .call_tool(
            CallToolRequestParams::new("list_pods")
                .with_arguments(json!({"bogus": 1}).as_object().cloned().unwrap_or_default()),
        )
        .await;
    assert!(
        r.is_err() || r.as_ref().is_ok_and(|r| r.is_error == Some(true)),
        "unknown arguments are refused: {r:?}"
    );

    let r = call(&client, "list_namespaces", json!({})).await;
    assert_eq!(
        r.structured_content,
        Some(json!({"namespaces": ["default", "kube-public", "kube-system"]}))
    );

    // Pod writes: reserved keys, Pod Security, real Kubernetes errors.
    let r = call(&client, "create_pod", json!({"name": "hijack", "labels": {"nogoo9/workspace-id": "demo"}, "containers": [{"name": "c", "image": "x"}]})).await;
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["code"].clone()),
        Some(json!(403))
    );
    assert!(
        text(&r).contains("labels nogoo9/workspace-id are reserved for the workspace spawner"),
        "{}",
        text(&r)
    );
    let r = call(&client, "create_pod", json!({"name": "hostnet", "hostNetwork": true, "containers": [{"name": "c", "image": "x"}]})).await;
    assert!(
        text(&r).contains("spec.hostNetwork: host namespaces are forbidden"),
        "{}",
        text(&r)
    );
    let r = call(
        &client,
        "create_pod",
        json!({"name": "typo", "containers": [{"name": "c", "image": "x", "imagee": "y"}]}),
    )
    .await;
    assert!(
        text(&r).contains("containers[0].imagee: unknown field"),
        "{}",
        text(&r)
    );
    let r = call(&client, "create_pod", json!({"name": "made", "labels": {"app": "made"}, "containers": [{"name": "c", "image": "x"}]})).await;
    assert_eq!(text(&r), "Created pod made in namespace default");
    let r = call(
        &client,
        "patch_pod",
        json!({"name": "made", "patch": {"metadata": {"labels": {"nogoo9/user-sub": "me"}}}}),
    )
    .await;
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["code"].clone()),
        Some(json!(403))
    );
    let r = call(
        &client,
        "patch_pod",
        json!({"name": "made", "patch": {"metadata": {"labels": {"tier": "web"}}}}),
    )
    .await;
    assert!(
        text(&r).starts_with("Patched pod made (resourceVersion: "),
        "{}",
        text(&r)
    );
    let r = call(
        &client,
        "patch_pod",
        json!({"name": "made", "patch": {"spec": {"restartPolicy": "Never"}}}),
    )
    .await;
    assert_eq!(
        r.structured_content.as_ref().map(|v| v["code"].clone()),
        Some(json!(422)),
        "{}",
        text(&r)
    );
    let r = call(
        &client,
        "delete_pod",
        json!({"name": "agent-box", "gracePeriodSeconds": 0}),
    )
    .await;
    assert_eq!(text(&r), "Deleted pod agent-box from namespace default");
    let _ = client.cancel().await;
    s.stop().await;
}

#[tokio::test]
async fn namespaced_mode_pins_every_tool_and_readyz_follows_the_first_list() {
    let s = start(|c| {
        c.mode = Mode::Namespaced;
        c.namespace = "kube-system".into();
    })
    .await;
    let addr = s.control.http_addr.expect("http");
    tokio::time::timeout(
        Duration::from_secs(10),
        s.control.synced.clone().wait_for(|v| *v),
    )
    .await
    .unwrap_or_else(|_| panic!("synced"))
    .unwrap_or_else(|e| panic!("{e}"));
    let ready = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut t = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        t.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        t.read_to_string(&mut out)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        out
    };
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let client = plain_client(&format!("http://{addr}/mcp")).await;
    let r = call(&client, "list_namespaces", json!({})).await;
    assert_eq!(
        r.structured_content,
        Some(json!({"namespaces": ["kube-system"]}))
    );
    let r = call(&client, "list_pods", json!({"namespace": "default"})).await;
    assert_eq!(
        text(&r),
        "(no pods)",
        "the namespace argument is ignored in namespaced mode"
    );
    let _ = client.cancel().await;
    s.stop().await;
}

#[tokio::test]
async fn the_binary_speaks_mcp_over_stdio() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = dir.path().join("kc.yaml");
    std::fs::write(&kubeconfig, sim.kubeconfig()).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_nocrd9"));
    cmd.args([
        "--transport",
        "stdio",
        "--namespace",
        "default",
        "--gateway-socket",
    ])
    .arg(dir.path().join("c.sock"))
    .env("KUBECONFIG", &kubeconfig)
    .env("LOG_LEVEL", "warn");
    let transport = rmcp::transport::TokioChildProcess::new(cmd).unwrap_or_else(|e| panic!("{e}"));
    let client = ().serve(transport).await.unwrap_or_else(|e| panic!("{e}"));
    let r = call(&client, "current_namespace", json!({})).await;
    assert_eq!(text(&r), "Namespace: default\nMode: cluster\nRole: admin");
    let r = call(&client, "list_pods", json!({})).await;
    assert_eq!(text(&r), "(no pods)");
    let _ = client.cancel().await;
    sim.shutdown().await;
}

#[test]
fn bad_configuration_exits_2_naming_every_problem() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nocrd9"))
        .args([
            "--namespace",
            "Bad_NS",
            "--default-workspace-port",
            "0",
            "--base-url",
            "no-slash",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
            "--cors-origin",
            "example.com",
            "--registry-url",
            "registry:5000",
            "--workspace-domain",
            "under_score.test",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for flag in [
        "--namespace",
        "--default-workspace-port",
        "--base-url",
        "--tls-cert /nonexistent/cert.pem",
        "--cors-origin",
        "--registry-url",
        "--workspace-domain (WORKSPACE_DOMAIN): the workspace domain \"under_score.test\" has a label \"under_score\"",
    ] {
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}

#[test]
fn bad_ui_and_dev_flags_exit_2_naming_the_flag() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nocrd9"))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stderr) = run(&["--ui-enabled", "maybe"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--ui-enabled"), "{stderr}");
    let (code, stderr) = run(&[], &[("UI_ENABLED", "sometimes")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--ui-enabled"), "{stderr}");
    let (code, stderr) = run(&["dev", "--jwt-secret", "short"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--jwt-secret") && stderr.contains("at least 32 bytes"),
        "{stderr}"
    );
}

#[tokio::test]
async fn tools_the_identity_cannot_use_are_not_registered() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = SimConfig::for_tests();
    config.deny = vec![
        "get:pods/log"
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}")),
        "delete:pods"
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}")),
    ];
    let sim = Sim::start(config).await.unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kube = sim.client().await.unwrap_or_else(|e| panic!("{e}"));
    for expect_gated in [true, false] {
        let socket = dir.path().join(format!("c{expect_gated}.sock"));
        let mut config = ControlConfig::local("default", socket);
        config.permission_checks = expect_gated;
        let control = Control::start(&config, kube.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}/mcp",
            control.http_addr.unwrap_or_else(|| panic!("http"))
        );
        let client = plain_client(&url).await;
        let names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        for gated in ["get_pod_logs", "delete_pod", "stop_workspace"] {
            assert_eq!(
                !names.iter().any(|n| n == gated),
                expect_gated,
                "{gated} in {names:?}"
            );
        }
        assert!(names.iter().any(|n| n == "list_pods"));
        let r = call(&client, "check_permissions", json!({})).await;
        if expect_gated {
            assert!(text(&r).contains("pods/log\tget\t❌ NO"), "{}", text(&r));
            let disabled =
                r.structured_content.clone().unwrap_or_default()["disabledTools"].clone();
            assert_eq!(
                disabled,
                json!(["delete_pod", "get_pod_logs", "stop_workspace"])
            );
            let cn = call(&client, "current_namespace", json!({})).await;
            assert!(text(&cn).contains("Disabled tools (missing Kubernetes permissions; see check_permissions): delete_pod, get_pod_logs, stop_workspace"), "{}", text(&cn));
        } else {
            assert!(
                text(&r).contains("Permission checks are disabled"),
                "{}",
                text(&r)
            );
        }
        let _ = client.cancel().await;
        control.stop().await;
    }
    sim.shutdown().await;
}
