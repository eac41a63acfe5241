//! The `nocrd9-gateway` binary's refusals: bad flags and busy addresses exit 2 with the reason.

use std::process::Command;

#[test]
fn bad_flags_and_busy_addresses_exit_2() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let busy_addr = busy
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    for (args, needle) in [
        (vec!["--threads", "0"], "--threads must be at least 1"),
        (
            vec!["--workspace-domain", "a..b"],
            "--workspace-domain: the workspace domain \"a..b\" has a label \"\"",
        ),
        (
            vec!["--path-routing", "false"],
            "--path-routing false needs --workspace-domain",
        ),
        (
            vec!["--path-routing", "maybe"],
            "invalid value 'maybe' for '--path-routing",
        ),
        (vec!["--listen", "not-an-address"], "invalid socket address"),
        (vec!["--auth-enabled"], "needs a key"),
        (
            vec!["--auth-enabled", "--jwt-secret", "short"],
            "HS256 needs at least 32",
        ),
        (
            vec![
                "--auth-enabled",
                "--jwt-secret",
                "0123456789abcdef0123456789abcdef",
                "--auth-sub-jsonpath",
                "$..sub",
            ],
            "AUTH_SUB_JSONPATH",
        ),
        (vec!["--tls-cert", "/x.pem"], "--tls-key"),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "TLS certificate /nonexistent/cert.pem",
        ),
        (
            vec![
                "--listen",
                busy_addr.as_str(),
                "--admin-listen",
                "127.0.0.1:0",
            ],
            "cannot bind --listen",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                busy_addr.as_str(),
            ],
            "cannot bind --admin-listen",
        ),
        (
            vec!["--listen", "127.0.0.1:9", "--admin-listen", "0.0.0.0:9"],
            "--admin-listen 0.0.0.0:9 uses the same port as --listen 127.0.0.1:9",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_nocrd9-gateway"))
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
