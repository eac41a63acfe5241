//! Discovery documents (`/version`, `/api`, `/api/v1`, `/apis`, the authorization group)
//! so kubectl and kube-rs discovery work.

use serde_json::{Value, json};

fn resource(name: &str, kind: &str, namespaced: bool, verbs: &[&str], short: &[&str]) -> Value {
    let mut r = json!({
        "name": name,
        "singularName": if name.contains('/') { String::new() } else { kind.to_lowercase() },
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if !short.is_empty() {
        r["shortNames"] = json!(short);
    }
    if name == "pods" {
        r["categories"] = json!(["all"]);
    }
    r
}

const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "gitVersion": "v1.35.0-kube-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-24T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

pub fn core_v1() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("configmaps", "ConfigMap", true, CRUD, &["cm"]),
            resource("events", "Event", true, CRUD, &["ev"]),
            resource("namespaces", "Namespace", false, &["create", "delete", "get", "list", "patch", "update", "watch"], &["ns"]),
            resource("namespaces/status", "Namespace", false, &["get", "patch", "update"], &[]),
            resource("persistentvolumeclaims", "PersistentVolumeClaim", true, CRUD, &["pvc"]),
            resource("pods", "Pod", true, CRUD, &["po"]),
            resource("pods/log", "Pod", true, &["get"], &[]),
            resource("pods/status", "Pod", true, &["get", "patch", "update"], &[]),
            resource("secrets", "Secret", true, CRUD, &[]),
            resource("serviceaccounts", "ServiceAccount", true, CRUD, &["sa"]),
        ]
    })
}

pub const AUTHZ_GROUP: &str = "authorization.k8s.io";

fn authz_group() -> Value {
    json!({
        "name": AUTHZ_GROUP,
        "versions": [{"groupVersion": "authorization.k8s.io/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}
    })
}

pub fn api_groups() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [authz_group(), coordination_group()]})
}

fn coordination_group() -> Value {
    let gv = format!("{}/v1", crate::store::COORDINATION_GROUP);
    json!({
        "name": crate::store::COORDINATION_GROUP,
        "versions": [{"groupVersion": gv, "version": "v1"}],
        "preferredVersion": {"groupVersion": gv, "version": "v1"}
    })
}

pub fn coordination_group_doc() -> Value {
    let mut g = coordination_group();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    g
}

pub fn coordination_v1() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{}/v1", crate::store::COORDINATION_GROUP),
        "resources": [resource("leases", "Lease", true, CRUD, &[])]
    })
}

pub fn authz_group_doc() -> Value {
    let mut g = authz_group();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    g
}

pub fn authz_v1() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "authorization.k8s.io/v1",
        "resources": [resource("selfsubjectaccessreviews", "SelfSubjectAccessReview", false, &["create"], &[])]
    })
}

/// `/openapi/v3`: the index kubectl reads to find each group-version's document.
pub fn openapi_v3_root() -> Value {
    json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=kube-sim-1"}}})
}

/// `/openapi/v3/api/v1`: the PATCH operations of the served kinds, each declaring the
/// `fieldValidation` parameter, which is how kubectl learns the server validates fields
/// itself (it then sends `fieldValidation=Strict` instead of validating client-side).
/// Object schemas are not served, so `kubectl explain` is not supported.
pub fn openapi_v3_core() -> Value {
    let mut paths = serde_json::Map::new();
    for (path, kind) in [
        ("/api/v1/namespaces/{name}", "Namespace"),
        ("/api/v1/namespaces/{namespace}/pods/{name}", "Pod"),
        (
            "/api/v1/namespaces/{namespace}/configmaps/{name}",
            "ConfigMap",
        ),
        (
            "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
            "ServiceAccount",
        ),
        ("/api/v1/namespaces/{namespace}/secrets/{name}", "Secret"),
        (
            "/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}",
            "PersistentVolumeClaim",
        ),
        ("/api/v1/namespaces/{namespace}/events/{name}", "Event"),
    ] {
        paths.insert(
            path.to_string(),
            json!({"patch": {
                "operationId": format!("patchCoreV1{kind}"),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
                ],
                "responses": {"200": {"description": "OK"}}
            }}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kube-sim)", "version": "v1.35.0-kube-sim"},
        "paths": paths,
        "components": {}
    })
}
