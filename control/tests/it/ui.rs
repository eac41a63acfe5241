//! The web UI in a real browser: `nocrd9 dev` (simulated cluster, control plane, gateway,
//! auth on) driven by `tests/ui/browser.mjs` through playwright-core and Debian's
//! Chromium, headless. `.ci/run` installs both; screenshots of the main views land in
//! `target/ui-screenshots/` as artifacts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const SECRET: &str = "ui-browser-test-secret-ui-browser-test";

fn chromium() -> PathBuf {
    let path = PathBuf::from(
        std::env::var_os("NOCRD9_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
    );
    assert!(
        path.exists(),
        "Chromium is not installed at {}: run .ci/run, or apt-get install chromium (or set NOCRD9_CHROMIUM)",
        path.display()
    );
    path
}

fn test_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run .ci/run, or  (cd control/tests/ui && npm ci)"
    );
    dir
}

/// The value after `label` on the banner line that has it.
fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {label:?} in the dev banner:\n{banner}"))
        .to_string()
}

async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_runs_the_workspace_lifecycle_in_a_browser() {
    let chromium = chromium();
    let dir = test_dir();
    let mut dev = tokio::process::Command::new(env!("CARGO_BIN_EXE_nocrd9"))
        .args(["dev", "--port", "0", "--gateway-port", "0"])
        .env("NOCRD9_DEV_JWT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut lines = BufReader::new(dev.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let mut banner = String::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(line)) = lines.next_line().await {
            banner.push_str(&line);
            banner.push('\n');
            if line.trim().starts_with("curl ") {
                return;
            }
        }
        panic!("nocrd9 dev ended before it was ready:\n{banner}")
    })
    .await
    .unwrap_or_else(|_| panic!("nocrd9 dev not ready within 90 s"));
    let mcp = banner_value(&banner, "MCP endpoint:");
    let ui = banner_value(&banner, "web UI:");
    let ui = ui.split('?').next().unwrap_or_default().to_string();
    let token = banner_value(&banner, "token:");
    let other = shared::auth::mint::hs256(
        SECRET.as_bytes(),
        &shared::auth::mint::claims_for("alice", 600),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    // Emptied first, so the screenshot checks below see only this run's pictures.
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("the screenshot folder");

    let run = tokio::process::Command::new("node")
        .arg(dir.join("browser.mjs"))
        .current_dir(&dir)
        .env("NOCRD9_UI", &ui)
        .env("NOCRD9_MCP", &mcp)
        .env("NOCRD9_TOKEN", &token)
        .env("NOCRD9_OTHER_TOKEN", &other)
        .env("NOCRD9_SCREENSHOTS", &shots)
        .env("NOCRD9_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run).await;
    stop(&mut dev).await;
    let out = out
        .unwrap_or_else(|_| panic!("the browser test took over 300 s"))
        .unwrap_or_else(|e| panic!("running node: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        shots.display()
    );
    assert!(stdout.contains("browser test passed"), "{stdout}");
    for view in ["workspaces", "templates", "logs", "pods", "workspaces-375"] {
        assert!(
            shots.join(format!("{view}.png")).exists(),
            "no screenshot of {view}"
        );
    }
}
