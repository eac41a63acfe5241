//! TLS on the public listener: HTTP/2 by ALPN (and HTTP/1.1), `X-Forwarded-Proto:
//! https`, and `Secure` on the workspace cookie. The client is curl, which nobody here
//! wrote.

use std::process::Command;

use serde_json::{Value, json};
use shared::auth::{Verifier, VerifierConfig};

use crate::harness::{Options, TestGateway};

const SECRET: &[u8] = b"tls-test-secret-tls-test-secret-tls-test";

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "10", "-D", "-"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("curl: {e}"));
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_h2_and_secure_cookies() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap_or_else(|e| panic!("{e}"));
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));

    let ctl = crate::harness::control();
    let stop = tokio_util::sync::CancellationToken::new();
    let upstream = crate::harness::echo_app(&stop).await;
    let verifier = Verifier::new(VerifierConfig {
        secret: Some(SECRET.to_vec()),
        cache_size: 100,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let gw = TestGateway::start_with(
        &ctl.socket,
        Options {
            auth: Some(std::sync::Arc::new(verifier)),
            tls: Some(gateway::TlsFiles {
                cert: cert_path,
                key: key_path,
            }),
            ..Default::default()
        },
    )
    .await;
    crate::harness::publish(
        &ctl,
        vec![crate::harness::route("owned", upstream, Some("alice"))],
    )
    .await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 600;
    let token = shared::auth::mint::hs256(SECRET, &json!({"sub": "alice", "exp": exp}))
        .unwrap_or_else(|e| panic!("{e}"));
    let base = format!("https://127.0.0.1:{}", gw.addr.port());

    let (head, body) = curl(&[
        "--http2",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{base}/route/owned/h2?q=1"),
    ]);
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    let seen: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(seen["path"], "/h2");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");

    let (head, _) = curl(&[
        "--http1.1",
        "-H",
        "Accept: text/html",
        &format!("{base}/route/owned/?token={token}"),
    ]);
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_default();
    assert!(
        cookie.contains("Path=/route/owned/") && cookie.ends_with("; Secure"),
        "{cookie}"
    );

    let (head, body) = curl(&["--http2", &format!("{base}/route/owned/")]);
    assert!(head.starts_with("HTTP/2 401"), "{head}");
    assert!(
        head.contains("https://127.0.0.1:"),
        "the challenge names the https origin: {head}"
    );
    assert!(body.contains("missing_token"), "{body}");
    stop.cancel();
    ctl.stop.cancel();
}

/// Host routing over TLS: one wildcard certificate for `*.DOMAIN` serves every workspace
/// host (curl checks it against the name it asked for, by SNI), and the workspace cookie
/// is host-only and `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_certificate_serves_every_workspace_host() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cert = rcgen::generate_simple_self_signed(vec!["*.ws.test".into(), "ws.test".into()])
        .unwrap_or_else(|e| panic!("{e}"));
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
    let ctl = crate::harness::control();
    let stop = tokio_util::sync::CancellationToken::new();
    let upstream = crate::harness::echo_app(&stop).await;
    let verifier = Verifier::new(VerifierConfig {
        secret: Some(SECRET.to_vec()),
        cache_size: 100,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let gw = TestGateway::start_with(
        &ctl.socket,
        Options {
            auth: Some(std::sync::Arc::new(verifier)),
            tls: Some(gateway::TlsFiles {
                cert: cert_path.clone(),
                key: key_path,
            }),
            routing: gateway::routing::Routing {
                domain: Some("ws.test".into()),
                path: true,
            },
            ..Default::default()
        },
    )
    .await;
    crate::harness::publish(
        &ctl,
        vec![crate::harness::route("owned", upstream, Some("alice"))],
    )
    .await;
    let token = shared::auth::mint::hs256(SECRET, &shared::auth::mint::claims_for("alice", 600))
        .unwrap_or_else(|e| panic!("{e}"));
    let port = gw.addr.port();
    let resolve = format!("owned.ws.test:{port}:127.0.0.1");
    let ca = cert_path.display().to_string();
    // Verified against the certificate (no -k): the wildcard covers the workspace host.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-D",
            "-",
            "--http2",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("https://owned.ws.test:{port}/p"))
        .output()
        .unwrap_or_else(|e| panic!("curl: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(text.contains("\"path\":\"/p\""), "{text}");
    let (head, _) = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "Accept: text/html",
        &format!("https://owned.ws.test:{port}/?token={token}"),
    ]);
    assert!(head.starts_with("HTTP/2 303"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_default();
    assert!(
        cookie.contains("Path=/;")
            && cookie.ends_with("SameSite=Lax; Secure")
            && !cookie.contains("Domain"),
        "{cookie}"
    );
    stop.cancel();
    ctl.stop.cancel();
}
