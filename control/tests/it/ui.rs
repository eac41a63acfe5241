//! The web UI in a real browser: `nocrd9 dev` (simulated cluster, control plane, gateway,
//! auth on) driven by `tests/ui/browser.mjs` through playwright-core and Debian's
//! Chromium, headless (`./run-tests` installs both); screenshots of the main views land in
//! `target/ui-screenshots/` as artifacts.

use std::path::Path;

use crate::browser::{Dev, run_script};

const SECRET: &str = "ui-browser-test-secret-ui-browser-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_runs_the_workspace_lifecycle_in_a_browser() {
    let mut dev = Dev::start(SECRET).await;
    let mcp = dev.value("MCP endpoint:");
    let ui = dev.value("web UI:");
    let ui = ui.split('?').next().unwrap_or_default().to_string();
    let token = dev.value("token:");
    let other = dev.token_for("alice");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    // Emptied first, so the screenshot checks below see only this run's pictures.
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("the screenshot folder");

    let shots_dir = shots.display().to_string();
    let stdout = run_script(
        "browser.mjs",
        &[
            ("NOCRD9_UI", &ui),
            ("NOCRD9_MCP", &mcp),
            ("NOCRD9_TOKEN", &token),
            ("NOCRD9_OTHER_TOKEN", &other),
            ("NOCRD9_SCREENSHOTS", &shots_dir),
        ],
        "browser test passed",
    )
    .await;
    dev.stop().await;
    assert!(
        stdout.contains("step: open the workspace through the gateway"),
        "{stdout}"
    );
    for view in ["workspaces", "templates", "logs", "pods", "workspaces-375"] {
        assert!(
            shots.join(format!("{view}.png")).exists(),
            "no screenshot of {view}"
        );
    }
}
