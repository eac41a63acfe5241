//! What the browser tests share: Debian's Chromium and playwright-core (installed by
//! `./run-tests`), and `nocrd9 dev` started with a known secret so tests can mint other
//! users' tokens.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

pub fn chromium() -> PathBuf {
    let path = PathBuf::from(
        std::env::var_os("NOCRD9_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
    );
    assert!(
        path.exists(),
        "Chromium is not installed at {}: run ./run-tests, or apt-get install chromium (or set NOCRD9_CHROMIUM)",
        path.display()
    );
    path
}

/// `control/tests/ui`, where the scripts and playwright-core are.
pub fn scripts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run ./run-tests, or  (cd control/tests/ui && npm ci)"
    );
    dir
}

/// The value after `label` on the banner line that has it.
pub fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {label:?} in the dev banner:\n{banner}"))
        .to_string()
}

/// `nocrd9 dev` on free ports with this HS256 secret, once its banner is out.
pub struct Dev {
    pub child: tokio::process::Child,
    pub banner: String,
    pub secret: &'static str,
}

impl Dev {
    pub async fn start(secret: &'static str) -> Dev {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nocrd9"))
            .args(["dev", "--port", "0", "--gateway-port", "0"])
            .env("NOCRD9_DEV_JWT_SECRET", secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut lines =
            BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
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
        Dev {
            child,
            banner,
            secret,
        }
    }

    pub fn value(&self, label: &str) -> String {
        banner_value(&self.banner, label)
    }

    /// A token for another user of this run.
    pub fn token_for(&self, sub: &str) -> String {
        shared::auth::mint::hs256(
            self.secret.as_bytes(),
            &shared::auth::mint::claims_for(sub, 600),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

/// Runs `node <script>` in the scripts directory with `env`; panics with its output
/// unless it succeeds and prints `done`.
pub async fn run_script(script: &str, env: &[(&str, &str)], done: &str) -> String {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(scripts_dir().join(script))
        .current_dir(scripts_dir())
        .env("NOCRD9_CHROMIUM", chromium())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} took over 300 s"))
        .unwrap_or_else(|e| panic!("running node: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(done),
        "{script} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}
