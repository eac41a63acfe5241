//! `nocrd9 dev` on a fresh checkout: it prints working URLs, its printed curl answers
//! from the demo workspace through the gateway, and SIGTERM stops everything.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn dev_prints_a_curl_that_works_and_stops_cleanly() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nocrd9"))
        .args(["dev", "--port", "0", "--gateway-port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let mut banner = Vec::new();
    let curl = tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(line)) = lines.next_line().await {
            banner.push(line.clone());
            if let Some(cmd) = line.trim().strip_prefix("curl ") {
                return cmd.to_string();
            }
        }
        panic!("nocrd9 dev ended before printing its curl: {banner:?}")
    })
    .await
    .unwrap_or_else(|_| panic!("no curl line within 90 s"));
    let text = banner.join("\n");
    assert!(
        text.contains("MCP endpoint:      http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("demo workspace:    http://demo.localhost:")
            && text.contains("/route/demo/)"),
        "both routing forms are printed: {text}"
    );
    let gateway_pid: i32 = text
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("gateway pid in {text}"));

    // The printed curl, run as printed: `curl -H 'Authorization: Bearer …' http://demo.localhost:…/hello`
    // (curl resolves `*.localhost` to loopback itself).
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("curl -sS -i --max-time 10 {curl}"))
        .output()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"pod\":\"ws-dev-demo\"") && answer.contains("\"path\":\"/hello\""),
        "{answer}"
    );
    assert!(
        text.contains("token:             ey"),
        "the dev token is printed: {text}"
    );
    // Without the token the gateway refuses, and so does the MCP endpoint.
    let url = curl.rsplit(' ').next().unwrap_or_default();
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{curl}"));
    let (authority, path) = rest.split_once('/').unwrap_or_else(|| panic!("{curl}"));
    assert!(
        authority.starts_with("demo.localhost:"),
        "host routing in dev: {curl}"
    );
    let port = authority.rsplit(':').next().unwrap_or_default();
    let mut s = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut refused = String::new();
    s.read_to_string(&mut refused)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    let pid = child.id().unwrap_or_else(|| panic!("pid")) as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap_or_else(|_| panic!("stopped in time"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{status:?}");
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while nix::sys::signal::kill(nix::unistd::Pid::from_raw(gateway_pid), None).is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the gateway child stops with nocrd9 dev");
}

#[tokio::test]
async fn the_gateway_never_outlives_a_killed_dev() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nocrd9"))
        .args(["dev", "--port", "0", "--gateway-port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let mut banner = String::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(line)) = lines.next_line().await {
            banner.push_str(&line);
            banner.push('\n');
            if line.trim().starts_with("curl ") {
                return;
            }
        }
        panic!("nocrd9 dev ended early: {banner}")
    })
    .await
    .unwrap_or_else(|_| panic!("no banner within 90 s"));
    let gateway_pid: i32 = banner
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("gateway pid in {banner}"));
    // SIGKILL: no chance to stop the child itself.
    child.kill().await.unwrap_or_else(|e| panic!("{e}"));
    let gone = tokio::time::timeout(Duration::from_secs(15), async {
        while nix::sys::signal::kill(nix::unistd::Pid::from_raw(gateway_pid), None).is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if gone.is_err() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(gateway_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        panic!("the gateway outlived its nocrd9 dev");
    }
}
