//! Workspace origins in Chromium (`tests/ui/origins.mjs`): under host routing a page in
//! one user's workspace cannot read another user's, whose cookie is not sent; `?token=`
//! navigations end without the token; under path routing an app that redirects to
//! `/login` and sets a `Path=/` cookie works inside `/route/<id>/`.

use crate::browser::{Dev, run_script};

const SECRET: &str = "origins-browser-test-secret-origins-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_page_cannot_reach_another_users_workspace() {
    let mut dev = Dev::start(SECRET).await;
    let mcp = dev.value("MCP endpoint:");
    let gateway = dev.value("gateway:");
    let port = gateway.rsplit(':').next().unwrap_or_default().to_string();
    let (alice, mallory) = (dev.token_for("alice"), dev.token_for("mallory"));
    let stdout = run_script(
        "origins.mjs",
        &[
            ("NOCRD9_MCP", &mcp),
            ("NOCRD9_GATEWAY_PORT", &port),
            ("NOCRD9_ALICE_TOKEN", &alice),
            ("NOCRD9_MALLORY_TOKEN", &mallory),
        ],
        "origins test passed",
    )
    .await;
    dev.stop().await;
    assert!(stdout.contains("outcomes: "), "{stdout}");
    println!("{stdout}");
}
