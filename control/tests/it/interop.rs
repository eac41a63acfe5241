//! Interop with an MCP client nobody here wrote: the official Python SDK (`mcp`, pinned
//! in `tests/interop/requirements.txt`, installed by `.ci/run` into `target/mcp-venv`)
//! runs the brief's workspace lifecycle against `nocrd9` on the simulated cluster, over
//! streamable HTTP (session-based and 2026-07-28, auth on) and over stdio.

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
        "the MCP Python SDK is not installed: run .ci/run, or\n  python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install -r control/tests/interop/requirements.txt"
    );
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_runs_the_lifecycle_over_http_and_stdio() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let python = python();
    let h = start(|c| with_hs256(c, SECRET)).await;
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
