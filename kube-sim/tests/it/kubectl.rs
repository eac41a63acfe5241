//! Conformance through kubectl, a client nobody here wrote (preinstalled on the dev
//! image; `.ci/run` installs Debian's `kubernetes-client` where it is missing).

use std::process::Command;

use serde_json::Value;

use crate::cli::start_sim;

struct Kubectl {
    kubeconfig: std::path::PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.kubeconfig.parent().expect("dir"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl must be installed (apt-get install kubernetes-client)");
        if let Some(input) = stdin {
            child
                .stdin
                .as_mut()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, None)
    }

    fn ok_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin);
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, None);
        assert!(!ok, "kubectl {args:?} should fail, printed {out}");
        err
    }
}

const WORKSPACE_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: ws
  labels: {app: workspace}
spec:
  containers:
  - name: workspace
    image: node:20-alpine
    command: ["sleep", "infinity"]
    volumeMounts: [{name: workspace-storage, mountPath: /workspace}]
  volumes: [{name: workspace-storage, emptyDir: {}}]
"#;

#[tokio::test]
async fn kubectl_drives_pods_config_maps_and_sees_real_errors() {
    let sim = start_sim(&["--deny", "delete:pods@locked", "--history", "50"]);
    let k = Kubectl {
        kubeconfig: sim.kubeconfig.clone(),
    };
    let (ok, _, err) = k.run(&["get", "pods", "-A"], None);
    assert!(ok && err.contains("No resources found"), "{err}");
    assert!(k.ok(&["get", "ns"]).contains("kube-system"));

    k.ok_in(&["create", "-f", "-"], Some(WORKSPACE_POD));
    k.ok(&["wait", "--for=condition=Ready", "pod/ws", "--timeout=20s"]);
    let wide = k.ok(&["get", "pods", "-A", "-o", "wide"]);
    assert!(
        wide.contains("ws") && wide.contains("Running") && wide.contains("kube-sim"),
        "{wide}"
    );
    let ip = k.ok(&["get", "pod", "ws", "-o", "jsonpath={.status.podIP}"]);
    let answer = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(format!("{ip}:3000"))
            .await
            .expect("pod app");
        s.write_all(b"GET /x?y=1 HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    };
    assert!(
        answer.contains("\"pod\":\"ws\"") && answer.contains("\"path\":\"/x\""),
        "{answer}"
    );
    assert!(k.ok(&["logs", "ws"]).contains("built-in workspace app"));

    k.ok(&["label", "pod", "ws", "tier=web"]);
    assert!(
        k.ok(&["get", "pods", "-l", "tier in (web)", "-o", "name"])
            .contains("pod/ws")
    );
    assert!(
        k.ok(&["get", "pods", "-l", "tier!=web", "-o", "name"])
            .trim()
            .is_empty()
    );
    assert!(
        k.ok(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name"
        ])
        .contains("pod/ws")
    );
    k.ok(&[
        "patch",
        "pod",
        "ws",
        "-p",
        r#"{"spec":{"containers":[{"name":"workspace","image":"node:22-alpine"}]}}"#,
    ]);
    k.ok(&[
        "patch",
        "pod",
        "ws",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"a":"b"}}}"#,
    ]);
    k.ok(&[
        "patch",
        "pod",
        "ws",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/x","value":"y"}]"#,
    ]);
    let pod: Value =
        serde_json::from_str(&k.ok(&["get", "pod", "ws", "-o", "json"])).expect("json");
    assert_eq!(pod["spec"]["containers"][0]["image"], "node:22-alpine");
    assert_eq!(pod["metadata"]["annotations"]["a"], "b");
    let err = k.fails(&[
        "patch",
        "pod",
        "ws",
        "--type=merge",
        "-p",
        r#"{"spec":{"restartPolicy":"Never"}}"#,
    ]);
    assert!(
        err.contains("is invalid") && err.contains("pod updates may not change fields"),
        "{err}"
    );

    // Config maps: create, stale replace → 409, delete.
    k.ok(&["create", "configmap", "tpl", "--from-literal=spec={}"]);
    let cm = k.ok(&["get", "configmap", "tpl", "-o", "json"]);
    k.ok(&["label", "configmap", "tpl", "nogoo9/pod-template=true"]);
    let err = {
        let (ok, _, err) = k.run(&["replace", "-f", "-"], Some(&cm));
        assert!(!ok);
        err
    };
    assert!(
        err.contains("Operation cannot be fulfilled on configmaps \"tpl\""),
        "{err}"
    );
    k.ok(&["delete", "configmap", "tpl"]);
    assert!(k.fails(&["get", "configmap", "tpl"]).contains("NotFound"));

    // Strict server-side field validation (kubectl's default).
    let err = {
        let (ok, _, err) = k.run(
            &["create", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndta: {a: b}\n"),
        );
        assert!(!ok);
        err
    };
    assert!(err.contains("unknown field \"dta\""), "{err}");

    // Permissions: denied verbs and can-i.
    k.ok(&["create", "namespace", "locked"]);
    let answer = k
        .run(&["auth", "can-i", "delete", "pods", "-n", "locked"], None)
        .1;
    assert!(answer.starts_with("no"), "{answer}");
    assert_eq!(
        k.ok(&["auth", "can-i", "delete", "pods", "-n", "default"])
            .trim(),
        "yes"
    );
    k.ok_in(&["create", "-n", "locked", "-f", "-"], Some(WORKSPACE_POD));
    let err = k.fails(&["delete", "pod", "ws", "-n", "locked", "--wait=false"]);
    assert!(
        err.contains("Forbidden") && err.contains("cannot delete resource \"pods\""),
        "{err}"
    );

    // A watch resumed from a version older than the retained history: 410 Expired.
    for i in 0..60 {
        k.ok(&["create", "configmap", &format!("churn-{i}")]);
    }
    let events = k.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=2&timeoutSeconds=2",
    ]);
    let first: Value =
        serde_json::from_str(events.lines().next().expect("an event")).expect("event json");
    assert_eq!(first["type"], "ERROR");
    assert_eq!(first["object"]["code"], 410);
    assert_eq!(first["object"]["reason"], "Expired");

    k.ok(&["delete", "pod", "ws", "--timeout=30s"]);
    assert!(k.fails(&["get", "pod", "ws"]).contains("NotFound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_leases_work_like_the_real_server() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Event;
    use kube::Api;
    use kube::api::{Patch, PatchParams, PostParams};
    let sim = start_sim(&[]);
    let k = Kubectl {
        kubeconfig: sim.kubeconfig.clone(),
    };
    let client = {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&sim.kubeconfig).expect("kubeconfig"),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("config");
        kube::Client::try_from(config).expect("client")
    };
    // An event about a pod, listed by kubectl the way it prints events.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let ev: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ws-demo.1"},
        "involvedObject": {"kind": "Pod", "name": "ws-demo", "namespace": "default"},
        "reason": "Culled", "message": "idle for 2s", "type": "Normal",
        "lastTimestamp": "2026-11-29T10:00:00Z"
    }))
    .expect("event");
    events
        .create(&PostParams::default(), &ev)
        .await
        .expect("create event");
    let listed = k.ok(&["get", "events"]);
    assert!(
        listed.contains("Culled")
            && listed.contains("pod/ws-demo")
            && listed.contains("idle for 2s"),
        "{listed}"
    );
    // The real server's rule: an event lives in its object's namespace.
    let mut elsewhere = ev.clone();
    elsewhere.metadata.name = Some("ws-demo.2".into());
    elsewhere.involved_object.namespace = Some("kube-system".into());
    let err = events
        .create(&PostParams::default(), &elsewhere)
        .await
        .expect_err("invalid");
    assert!(
        err.to_string().contains("does not match event.namespace"),
        "{err}"
    );

    // A lease: created once (409 for the second claimant), updated with a
    // resourceVersion precondition (409 when stale), shown by kubectl with its holder.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "culler"},
        "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15}
    }))
    .expect("lease");
    let made = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");
    let again = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect_err("exists");
    assert!(
        matches!(&again, kube::Error::Api(s) if s.code == 409),
        "{again}"
    );
    let mut renewed = made.clone();
    if let Some(spec) = renewed.spec.as_mut() {
        spec.holder_identity = Some("replica-b".into());
    }
    let after = leases
        .replace("culler", &PostParams::default(), &renewed)
        .await
        .expect("update");
    let stale = leases
        .replace("culler", &PostParams::default(), &renewed)
        .await
        .expect_err("stale");
    assert!(
        matches!(&stale, kube::Error::Api(s) if s.code == 409),
        "{stale}"
    );
    assert_eq!(
        after.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("replica-b")
    );
    let patched = leases
        .patch(
            "culler",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"leaseTransitions": 1}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.spec.and_then(|s| s.lease_transitions), Some(1));
    let shown = k.ok(&["get", "leases"]);
    assert!(
        shown.contains("culler") && shown.contains("replica-b"),
        "{shown}"
    );
    let api = k.ok(&["api-resources"]);
    assert!(
        api.contains("leases") && api.contains("coordination.k8s.io/v1") && api.contains("events"),
        "{api}"
    );
}

/// Secrets and PersistentVolumeClaims as kubectl makes, lists and decodes them.
#[tokio::test]
async fn kubectl_makes_secrets_and_claims_like_the_real_server() {
    let sim = start_sim(&[]);
    let k = Kubectl {
        kubeconfig: sim.kubeconfig.clone(),
    };
    k.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=s3cr3t",
    ]);
    let shown = k.ok(&["get", "secrets"]);
    assert!(
        shown.contains("db") && shown.contains("Opaque") && shown.contains("DATA"),
        "{shown}"
    );
    // Stored base64, as the real server keeps it; kubectl decodes it.
    let encoded = k.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    assert_eq!(encoded.trim(), "czNjcjN0");
    let claim = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;
    k.ok_in(&["create", "-f", "-"], Some(claim));
    let claims = k.ok(&["get", "pvc"]);
    assert!(
        claims.contains("data") && claims.contains("Bound"),
        "{claims}"
    );
    let bad = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: nosize}
spec: {accessModes: [ReadWriteOnce]}
"#;
    let (ok, _, err) = k.run(&["create", "-f", "-"], Some(bad));
    assert!(!ok && err.contains("storage"), "{err}");
    assert!(k.fails(&["get", "pvc", "nosize"]).contains("NotFound"));
    k.ok(&["delete", "pvc", "data"]);
    k.ok(&["delete", "secret", "db"]);
    assert!(k.fails(&["get", "secret", "db"]).contains("NotFound"));
}
