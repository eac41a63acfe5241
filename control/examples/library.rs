//! Using the control plane as a Rust library: a context from a `kube::Client`, then
//! templates and workspaces without MCP. Runs against the simulated cluster, so
//! `cargo run -p control --example library` works anywhere.

use std::collections::BTreeMap;
use std::time::Duration;

use control::caller::Caller;
use control::config::Mode;
use control::context::Context;
use control::progress::Progress;
use control::template_writes::{self, TemplateFields};
use control::workspaces::{self, SpawnRequest};
use kube_sim::{Sim, SimConfig};
use serde_json::json;

/// Creates a template, spawns a workspace from it, lists and stops it; returns what
/// `list` showed.
pub async fn run() -> anyhow::Result<serde_json::Value> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig::for_tests()).await?;
    // Any kube::Client works: in a cluster, `kube::Client::try_default().await?`.
    let client = sim.client().await?;
    let ctx = Context::new(client, "default".into(), Mode::Namespaced);
    let me = Caller::Operator;

    let template = TemplateFields {
        description: Some("Python with a project checked out".into()),
        spec: Some(json!({"containers": [{"name": "main", "image": "python:3.12"}]})),
        annotations: BTreeMap::from([(
            "nogoo9/required-context".to_string(),
            "PROJECT".to_string(),
        )]),
        ..TemplateFields::default()
    };
    template_writes::create(&ctx, None, "python-sandbox", template)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;

    let spawned = workspaces::spawn(
        &ctx,
        SpawnRequest {
            id: "lib-demo".into(),
            namespace: None,
            template_ref: Some("python-sandbox".into()),
            spec: None,
            annotations: BTreeMap::new(),
            context: BTreeMap::from([("PROJECT".to_string(), "demo".to_string())]),
            wait: true,
            wait_timeout: Duration::from_secs(60),
        },
        &me,
        &Progress::none(),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    println!("{}", spawned.text);

    let listed = workspaces::list(&ctx, None, &me)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    println!("{}", listed.text);
    workspaces::stop(&ctx, "lib-demo", None, &me)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    sim.shutdown().await;
    Ok(listed.structured)
}

#[allow(dead_code)] // when included by tests/it/library.rs, `run` is called directly
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run().await.map(|_| ())
}
