//! Interop with MCP clients nobody here wrote, each running the brief's workspace
//! lifecycle against `nocrd9` on the simulated cluster over streamable HTTP (auth on) and
//! stdio: the official Python SDK (`mcp`, pinned in `tests/interop/requirements.txt`, in
//! `target/mcp-venv`; session-based and 2026-07-28) and the official TypeScript SDK
//! (`@modelcontextprotocol/sdk`, pinned in `tests/interop/ts/package-lock.json`; tool
//! listing, a spawn with progress, resources). `./run-tests` installs both.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{start, with_hs256};

const SECRET: &str = "interop-test-secret-interop-test-secret";

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NOCRD9_MCP_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/mcp-venv/bin/python");
    assert!(
        venv.exists(),
        "the MCP Python SDK is not installed: ./run-tests installs it, or\n  python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install -r control/tests/interop/requirements.txt"
    );
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_runs_the_lifecycle_over_http_and_stdio() {
    let python = python();
    // The lifecycle creates templates: the interop user is an administrator.
    let h = start(|c| {
        with_hs256(c, SECRET);
        c.admin_subjects = ["interop-user".to_string()].into();
    })
    .await;
    let kubeconfig = h.dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, h.sim.kubeconfig()).unwrap_or_else(|e| panic!("{e}"));
    let url = h.mcp_url();
    let token = shared::auth::mint::hs256(
        SECRET.as_bytes(),
        &shared::auth::mint::claims_for("interop-user", 600),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/mcp_lifecycle.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .env("NOCRD9_URL", &url)
        .env("NOCRD9_TOKEN", &token)
        .env("NOCRD9_BIN", env!("CARGO_BIN_EXE_nocrd9"))
        .env("KUBECONFIG", &kubeconfig)
        .env("NOCRD9_TMP", h.dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(100), run)
        .await
        .unwrap_or_else(|_| panic!("the Python SDK lifecycle took over 100 s"))
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(report.contains("Ran 4 tests"), "{report}");
    h.stop().await;
}

fn typescript_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ts");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "the MCP TypeScript SDK is not installed: ./run-tests installs it, or\n  (cd control/tests/interop/ts && npm ci)"
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_lists_every_tool_and_spawns_with_progress() {
    let dir = typescript_dir();
    let h = start(|c| {
        with_hs256(c, SECRET);
        c.admin_subjects = ["ts-user".to_string()].into();
    })
    .await;
    let kubeconfig = h.dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, h.sim.kubeconfig()).expect("kubeconfig");
    let token = crate::harness::token(SECRET, "ts-user", 600);
    let tools: Vec<&str> = control::tools::names().collect();
    let run = tokio::process::Command::new("node")
        .arg(dir.join("lifecycle.mjs"))
        .current_dir(&dir)
        .env("NOCRD9_URL", h.mcp_url())
        .env("NOCRD9_TOKEN", &token)
        .env("NOCRD9_BIN", env!("CARGO_BIN_EXE_nocrd9"))
        .env("KUBECONFIG", &kubeconfig)
        .env("NOCRD9_TMP", h.dir.path())
        .env("NOCRD9_TOOLS", serde_json::to_string(&tools).expect("json"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(100), run)
        .await
        .unwrap_or_else(|_| panic!("the TypeScript SDK lifecycle took over 100 s"))
        .expect("node runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    for line in [
        "streamable HTTP: passed",
        "stdio: passed",
        "typescript sdk: passed",
    ] {
        assert!(report.contains(line), "{line}\n{report}");
    }
    h.stop().await;
}
