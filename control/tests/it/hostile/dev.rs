//! `nocrd9 dev` on a shared machine: its files (the simulated cluster's admin
//! kubeconfig, the gateway log) are its user's alone, and no other user of the system
//! runs a `local` image (a process on this host, as the user who started it).

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{mode, nocrd9_bin, refused_plain};
use crate::harness::client;

const SECRET: &str = "hostile-dev-secret-hostile-dev-secret-00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_files_are_private_and_users_run_no_local_images() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut dev = tokio::process::Command::new(nocrd9_bin())
        .args(["dev", "--port", "0", "--gateway-port", "0"])
        .env("NOCRD9_DEV_JWT_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nocrd9 dev starts");
    let mut lines = BufReader::new(dev.stdout.take().expect("stdout")).lines();
    let mut banner = String::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(line)) = lines.next_line().await {
            banner.push_str(&line);
            banner.push('\n');
            if line.trim().starts_with("curl ") {
                return;
            }
        }
    })
    .await
    .expect("nocrd9 dev is ready within 90 s");
    let kubeconfig = banner
        .split("KUBECONFIG=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("the kubeconfig path in {banner}"));
    let dir = kubeconfig.parent().expect("its directory");
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    assert_eq!(mode(&kubeconfig), 0o600);
    assert_eq!(mode(&dir.join("gateway.log")), 0o600);
    assert!(
        banner.contains("`local` run as processes on this host"),
        "{banner}"
    );

    let mcp = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("MCP endpoint:"))
        .map(|s| s.trim().to_string())
        .expect("the MCP endpoint");
    let bob = client(&mcp, &crate::harness::token(SECRET, "bob", 600)).await;
    refused_plain(
        &bob,
        "create_pod",
        json!({"name": "host-shell", "containers": [{"name": "c", "image": "local", "command": ["sh", "-c", "id"]}]}),
        "`local` images",
    )
    .await;
}
