//! Bad input and injected faults get the real server's status codes and Status bodies.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use kube_sim::Faults;
use serde_json::{Value, json};

use crate::harness::{self, api_code, bearer, raw};

fn status(body: &str) -> Value {
    // Chunked bodies carry a size line; the JSON starts at the first brace.
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    serde_json::from_str(&body[start..end]).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn requests_without_the_token_are_unauthorized() {
    let sim = harness::sim().await;
    let (code, _, body) = raw(&sim, "GET", "/api/v1/pods", &[], b"").await;
    assert_eq!(code, 401);
    assert_eq!(status(&body)["reason"], "Unauthorized");
    let (code, _, _) = raw(
        &sim,
        "GET",
        "/api/v1/pods",
        &[("Authorization", "Bearer wrong")],
        b"",
    )
    .await;
    assert_eq!(code, 401);
    let (code, _, _) = raw(&sim, "GET", "/healthz", &[], b"").await;
    assert_eq!(code, 200, "health needs no token, like the real server's");
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_and_parameters_are_400s_naming_the_problem() {
    let sim = harness::sim().await;
    let auth = bearer(&sim);
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let cases: Vec<(&str, &str, &[u8], u16, &str)> = vec![
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            b"{not json",
            400,
            "json parse error",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            br#"{"metadata":{"name":"x"},"data":"oops"}"#,
            400,
            "data",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            br#"{"metadata":{"name":"x"},"dta":{}}"#,
            400,
            "unknown field \"dta\"",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            br#"{"kind":"Pod","metadata":{"name":"x"}}"#,
            400,
            "does not match the expected kind",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            br#"{"metadata":{"name":"x","namespace":"other"}}"#,
            400,
            "does not match the namespace",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            br#"{"metadata":{}}"#,
            422,
            "name or generateName is required",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods?labelSelector=a%20in%20b",
            b"",
            400,
            "unable to parse requirement",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods?limit=ten",
            b"",
            400,
            "limit",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods?continue=garbage",
            b"",
            400,
            "continue key is not valid",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods?resourceVersionMatch=Exact",
            b"",
            400,
            "resourceVersionMatch is forbidden",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/services",
            b"",
            404,
            "could not find the requested resource",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods?resourceVersion=999999&resourceVersionMatch=Exact",
            b"",
            504,
            "Too large resource version",
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
            br#"{"metadata":{"name":"other"}}"#,
            400,
            "does not match the name on the URL",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Loose",
            br#"{"metadata":{"name":"x"}}"#,
            400,
            "fieldValidation",
        ),
    ];
    for (method, path, body, code, needle) in cases {
        let (got, _, text) = raw(&sim, method, path, &h, body).await;
        assert_eq!(got, code, "{method} {path}: {text}");
        let s = status(&text);
        assert_eq!(s["kind"], "Status", "{text}");
        assert_eq!(s["code"], code);
        assert!(
            s["message"].as_str().unwrap_or_default().contains(needle),
            "{method} {path}: {text}"
        );
    }
    // Unknown fields are dropped with a Warning header when validation is not strict.
    let (code, head, _) = raw(
        &sim,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &h,
        br#"{"metadata":{"name":"w"},"dta":{}}"#,
    )
    .await;
    assert_eq!(code, 201);
    assert!(
        head.to_lowercase()
            .contains("warning: 299 - \"unknown field \\\"dta\\\"\""),
        "{head}"
    );
    // Patches: a bad document is a 400, an unsupported patch type a 415.
    let patch = |ct: &'static str| {
        [
            ("Authorization", auth.clone()),
            ("Content-Type", ct.to_string()),
        ]
    };
    let hp = patch("application/merge-patch+json");
    let hp: Vec<(&str, &str)> = hp.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, _, _) = raw(
        &sim,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/w",
        &hp,
        b"[1,2",
    )
    .await;
    assert_eq!(code, 400);
    let hp = patch("application/apply-patch+yaml");
    let hp: Vec<(&str, &str)> = hp.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, _, text) = raw(
        &sim,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/w",
        &hp,
        b"{}",
    )
    .await;
    assert_eq!(code, 415, "{text}");
    let (code, _, text) = raw(
        &sim,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &h,
        &vec![b' '; 4 * 1024 * 1024],
    )
    .await;
    assert_eq!(code, 413, "{text}");
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_faults_use_real_status_codes_and_can_be_switched_at_run_time() {
    let sim = harness::sim().await;
    let client = sim.client().await.expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let auth = bearer(&sim);
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    for (code, reason) in [
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (429, "TooManyRequests"),
    ] {
        let doc = json!({"errorRate": 1.0, "errorCodes": [code]}).to_string();
        let (got, _, _) = raw(&sim, "PUT", "/sim/v1/faults", &h, doc.as_bytes()).await;
        assert_eq!(got, 200);
        let (got, head, body) = raw(
            &sim,
            "GET",
            "/api/v1/namespaces/default/configmaps",
            &h,
            b"",
        )
        .await;
        assert_eq!(got, code);
        assert_eq!(status(&body)["reason"], reason);
        if code != 500 {
            assert!(head.to_lowercase().contains("retry-after: 1"), "{head}");
        }
    }
    let (got, _, body) = raw(&sim, "PUT", "/sim/v1/faults", &h, br#"{"errorRate": 2}"#).await;
    assert_eq!(got, 400);
    assert!(body.contains("errorRate"), "{body}");
    let (got, _, body) = raw(&sim, "PUT", "/sim/v1/faults", &h, br#"{"latencyMs": 1}"#).await;
    assert_eq!(got, 200, "{body}");
    assert_eq!(status(&body)["errorRate"], 0.0);
    assert!(
        cms.list(&Default::default()).await.is_ok(),
        "faults switched off"
    );
    // Through kube-rs, an injected 500 surfaces as an API error.
    sim.set_faults(Faults {
        error_rate: 1.0,
        error_codes: vec![500],
        ..Default::default()
    })
    .expect("faults");
    let err = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("cm"),
        )
        .await
        .expect_err("500");
    assert_eq!(api_code(&err), Some(500));
    sim.shutdown().await;
}

#[tokio::test]
async fn garbage_requests_never_break_the_server() {
    let sim = harness::sim().await;
    let auth = bearer(&sim);
    let paths = [
        "/api/v1/namespaces/default/pods/%ff%fe",
        "/api/v1/namespaces//pods",
        "/api/v1/namespaces/default/pods/x/log?tailLines=-1",
        "/api/v1/namespaces/default/pods/x/log?sinceSeconds=abc",
        "/api/v1/namespaces/default/pods?watch=1&resourceVersion=notanumber",
        "/api/v1/namespaces/default/pods?watch=1&sendInitialEvents=true",
        "/api/v1/namespaces/default/pods?timeoutSeconds=-5&watch=true",
        "/api/v1/namespaces/default/configmaps?limit=-1",
        "/api/v1/pods?fieldSelector=%3D%3D%3D",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "/../../etc/passwd",
        "/api/v1/namespaces/default/pods/a/b/c/d",
    ];
    let bodies: [&[u8]; 6] = [
        b"",
        b"null",
        b"[]",
        b"{\"metadata\":null}",
        b"{\"spec\":{\"containers\":[null]}}",
        &[0xff, 0x00, 0x12],
    ];
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            for body in bodies {
                let h = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/strategic-merge-patch+json"),
                ];
                let (code, _, _) = raw(&sim, method, path, &h, body).await;
                assert!((200..600).contains(&code), "{method} {path}: got {code}");
            }
        }
    }
    let (code, _, _) = raw(
        &sim,
        "GET",
        "/api/v1/namespaces",
        &[("Authorization", auth.as_str())],
        b"",
    )
    .await;
    assert_eq!(code, 200, "still serving");
    sim.shutdown().await;
}
