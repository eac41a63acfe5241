//! Every spawner annotation's effect on the planned pod.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shared::ids::WorkspaceId;

use super::*;
use crate::templates::parse_spec;

/// The brief's node-workspace-template.
fn node_template() -> (TemplateSpec, BTreeMap<String, String>) {
    let spec = parse_spec(&json!({
        "containers": [{"name": "workspace", "image": "node:20-alpine", "command": ["sleep", "infinity"],
                        "env": [{"name": "PROJECT_NAME", "value": "from-template"}, {"name": "KEEP", "value": "1"}],
                        "volumeMounts": [{"name": "workspace-storage", "mountPath": "/workspace"}]}],
        "volumes": [{"name": "workspace-storage", "emptyDir": {}}]
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let annotations: BTreeMap<String, String> = [
        (
            "nogoo9/description",
            "A standard Node.js development sandbox with S3 storage sync",
        ),
        ("nogoo9/required-context", "PROJECT_NAME,REPO_URL"),
        (
            "nogoo9/iam-role-arn",
            "arn:aws:iam::123456789012:role/workspace-s3-access",
        ),
        ("nogoo9/init-image", "alpine/git"),
        (
            "nogoo9/init-command",
            "git clone $REPO_URL /workspace/$PROJECT_NAME",
        ),
        (
            "nogoo9/pre-stop-command",
            "aws s3 sync /workspace s3://my-workspace-backups/$PROJECT_NAME",
        ),
        ("nogoo9/default-grace-period", "120"),
        ("nogoo9/workspace-port", "8080"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    (spec, annotations)
}

fn context() -> BTreeMap<String, String> {
    [
        ("PROJECT_NAME", "demo"),
        ("REPO_URL", "https://example.com/r.git"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect()
}

fn run(annotations: BTreeMap<String, String>, owner: Option<&str>) -> Result<Plan, SpawnError> {
    let id = WorkspaceId::parse("ws-1").unwrap_or_else(|e| panic!("{e}"));
    plan(SpawnInput {
        id: &id,
        namespace: "team",
        spec: node_template().0,
        annotations,
        context: context(),
        owner,
        template: Some("node-workspace-template"),
    })
}

fn json_of(plan: &Plan) -> Value {
    serde_json::to_value(&plan.pod).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_brief_template_plans_the_full_workspace() {
    let plan = run(node_template().1, Some("Alice@Example.com")).unwrap_or_else(|e| panic!("{e}"));
    let pod = json_of(&plan);
    assert_eq!(pod["metadata"]["name"], "ws-aliceexamp-ws-1");
    assert_eq!(pod["metadata"]["namespace"], "team");
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["nogoo9/type"], "workspace");
    assert_eq!(labels["nogoo9/workspace-id"], "ws-1");
    assert_eq!(labels["nogoo9/managed-by"], "nogoo9-spawner");
    assert_eq!(labels["nogoo9/template"], "node-workspace-template");
    assert!(
        labels["nogoo9/user-sub"]
            .as_str()
            .is_some_and(|v| v.starts_with("u-")),
        "an email is not a label value: {labels}"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["nogoo9/user-sub"],
        "Alice@Example.com"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["nogoo9/workspace-port"], "8080",
        "template annotations reach the pod"
    );

    let spec = &pod["spec"];
    assert_eq!(spec["terminationGracePeriodSeconds"], 120);
    assert_eq!(spec["serviceAccountName"], "ws-sa-ws-1");
    let init = &spec["initContainers"][0];
    assert_eq!(init["name"], "spawner-init");
    assert_eq!(init["image"], "alpine/git");
    assert_eq!(
        init["command"],
        json!([
            "/bin/sh",
            "-c",
            "git clone $REPO_URL /workspace/$PROJECT_NAME"
        ])
    );
    assert_eq!(
        init["volumeMounts"],
        json!([{"name": "workspace-storage", "mountPath": "/workspace"}])
    );
    assert_eq!(
        init["env"],
        json!([
            {"name": "NOGOO9_OWNER", "value": crate::spawner::owner_label("Alice@Example.com")},
            {"name": "NOGOO9_WORKSPACE_ID", "value": "ws-1"},
            {"name": "PROJECT_NAME", "value": "demo"},
            {"name": "REPO_URL", "value": "https://example.com/r.git"}
        ]),
        "the spawner's own variables first, from what it knows"
    );
    let main = &spec["containers"][0];
    assert_eq!(
        main["lifecycle"]["preStop"]["exec"]["command"],
        json!([
            "/bin/sh",
            "-c",
            "aws s3 sync /workspace s3://my-workspace-backups/$PROJECT_NAME"
        ])
    );
    assert_eq!(
        main["env"],
        json!([
            {"name": "KEEP", "value": "1"},
            {"name": "NOGOO9_OWNER", "value": crate::spawner::owner_label("Alice@Example.com")},
            {"name": "NOGOO9_WORKSPACE_ID", "value": "ws-1"},
            {"name": "PROJECT_NAME", "value": "demo"},
            {"name": "REPO_URL", "value": "https://example.com/r.git"}
        ]),
        "context replaces same-named env and is appended once"
    );
    let sa = plan
        .service_account
        .unwrap_or_else(|| panic!("service account"));
    assert_eq!(sa.metadata.name.as_deref(), Some("ws-sa-ws-1"));
    assert_eq!(
        sa.metadata
            .annotations
            .and_then(|a| a.get("eks.amazonaws.com/role-arn").cloned())
            .as_deref(),
        Some("arn:aws:iam::123456789012:role/workspace-s3-access")
    );
}

#[test]
fn a_sidecar_image_moves_the_pre_stop_hook_to_its_own_container() {
    let mut a = node_template().1;
    a.insert(
        "nogoo9/pre-stop-sidecar-image".into(),
        "amazon/aws-cli".into(),
    );
    a.remove("nogoo9/default-grace-period");
    a.remove("nogoo9/iam-role-arn");
    let plan = run(a, None).unwrap_or_else(|e| panic!("{e}"));
    let pod = json_of(&plan);
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(containers.len(), 2);
    assert!(
        containers[0].get("lifecycle").is_none(),
        "the main container keeps no hook"
    );
    assert_eq!(containers[1]["name"], "spawner-sidecar");
    assert_eq!(
        containers[1]["command"],
        json!(["/bin/sh", "-c", "sleep infinity"])
    );
    assert!(
        containers[1]["lifecycle"]["preStop"]["exec"]["command"][2]
            .as_str()
            .is_some_and(|c| c.starts_with("aws s3 sync"))
    );
    assert_eq!(
        pod["spec"]["terminationGracePeriodSeconds"], 60,
        "60 s by default when a pre-stop is set"
    );
    assert!(pod["spec"].get("serviceAccountName").is_none());
    assert!(plan.service_account.is_none());
    assert_eq!(pod["metadata"]["name"], "ws-anonymous-ws-1");
    assert_eq!(pod["metadata"]["labels"]["nogoo9/user-sub"], "anonymous");
    assert!(
        pod["metadata"]["annotations"]
            .get("nogoo9/user-sub")
            .is_none(),
        "no owner annotation without a verified identity"
    );
}

#[test]
fn missing_context_and_bad_annotations_are_errors() {
    let id = WorkspaceId::parse("ws-1").unwrap_or_else(|e| panic!("{e}"));
    let err = plan(SpawnInput {
        id: &id,
        namespace: "team",
        spec: node_template().0,
        annotations: node_template().1,
        context: BTreeMap::new(),
        owner: None,
        template: None,
    })
    .expect_err("missing");
    assert_eq!(
        err.to_string(),
        "Missing required context variables: PROJECT_NAME, REPO_URL"
    );
    let mut a = node_template().1;
    a.insert("nogoo9/default-grace-period".into(), "two minutes".into());
    assert_eq!(
        run(a, None).expect_err("grace").to_string(),
        "annotation nogoo9/default-grace-period must be a whole number of seconds, got \"two minutes\""
    );
    let mut a = node_template().1;
    a.insert(
        "nogoo9/required-context".into(),
        "PROJECT_NAME, ,REPO_URL,".into(),
    );
    assert!(run(a, None).is_ok(), "empty entries are ignored");
    let mut ctx = context();
    ctx.insert("NOGOO9_OWNER".into(), "victim".into());
    ctx.insert("nogoo9_workspace_id".into(), "x".into());
    let err = plan(SpawnInput {
        id: &id,
        namespace: "team",
        spec: node_template().0,
        annotations: node_template().1,
        context: ctx,
        owner: Some("mallory"),
        template: None,
    })
    .expect_err("reserved");
    assert_eq!(
        err.to_string(),
        "context keys NOGOO9_OWNER, nogoo9_workspace_id are reserved: the spawner sets NOGOO9_* variables itself"
    );
}

#[test]
fn names_are_always_valid() {
    let id = WorkspaceId::parse("x").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pod_name(Some("--__--"), &id), "ws-user-x");
    assert_eq!(pod_name(Some("bob"), &id), "ws-bob-x");
    assert_eq!(owner_label("bob"), "bob");
    assert_eq!(owner_label(&"a".repeat(64)).len(), 18);
}
