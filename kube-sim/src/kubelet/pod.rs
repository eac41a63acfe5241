//! One pod's life on the simulated node: schedule, sandbox (IP), init containers, main
//! containers, restarts, and graceful termination with preStop hooks.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal as UnixSignal;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::app::{self, AppIdentity};
use super::process::{self, ProcessGroup, ProcessSpec, is_local_image};
use super::{KubeletCtx, PodSignal};
use crate::resources::{NODE_NAME, now_rfc3339};
use crate::store::{Change, Kind, ObjKey, Outcome};

/// How long a simulated (non-local) init container or hook "runs".
const SIMULATED_STEP: Duration = Duration::from_millis(20);
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started: String,
    },
    Terminated {
        code: i32,
        reason: String,
        started: String,
        finished: String,
    },
}

impl State {
    fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            State::Running { started } => json!({"running": {"startedAt": started}}),
            State::Terminated {
                code,
                reason,
                started,
                finished,
            } => json!({"terminated": {
                "exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished,
                "containerID": ""
            }}),
        }
    }
}

/// One container of the pod, as the runtime sees it.
struct Container {
    name: String,
    image: String,
    local: bool,
    init: bool,
    /// A native sidecar: an init container with `restartPolicy: Always`.
    sidecar: bool,
    spec: Value,
    state: State,
    last: Option<State>,
    restarts: u32,
    ready: bool,
    /// Bumped on every start, so a stale exit report is ignored.
    run: u64,
    group: Option<ProcessGroup>,
}

impl Container {
    fn from_spec(spec: &Value, init: bool) -> Self {
        let image = spec
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Container {
            name: spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            local: is_local_image(&image),
            image,
            init,
            sidecar: init && spec.get("restartPolicy").and_then(Value::as_str) == Some("Always"),
            spec: spec.clone(),
            state: State::Waiting {
                reason: if init {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                }
                .into(),
                message: None,
            },
            last: None,
            restarts: 0,
            ready: false,
            run: 0,
            group: None,
        }
    }

    fn strings(&self, field: &str) -> Vec<String> {
        self.spec
            .get(field)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn status_json(&self, uid: &str) -> Value {
        let mut s = json!({
            "name": self.name,
            "image": self.image,
            "imageID": format!("kube-sim://{}", self.image),
            "containerID": format!("kube-sim://{uid}/{}/{}", self.name, self.run),
            "ready": self.ready,
            "started": self.running(),
            "restartCount": self.restarts,
            "state": self.state.to_json(),
            "lastState": self.last.as_ref().map_or(json!({}), State::to_json),
        });
        if self.run == 0
            && let Some(o) = s.as_object_mut()
        {
            o.remove("containerID");
        }
        s
    }
}

/// Events the worker waits for.
enum WorkerEvent {
    Exited { idx: usize, run: u64, code: i32 },
    RestartDue { idx: usize },
}

struct Condition {
    status: bool,
    since: String,
    reason: Option<String>,
    message: Option<String>,
}

pub(super) struct PodWorker {
    ctx: Arc<KubeletCtx>,
    key: ObjKey,
    uid: String,
    pod: Value,
    containers: Vec<Container>,
    ip: Option<Ipv4Addr>,
    dir: PathBuf,
    app_cancel: CancellationToken,
    events_tx: mpsc::UnboundedSender<WorkerEvent>,
    events_rx: mpsc::UnboundedReceiver<WorkerEvent>,
    signal: watch::Receiver<PodSignal>,
    phase: &'static str,
    start_time: Option<String>,
    conditions: Vec<(&'static str, Condition)>,
    initialized: bool,
}

/// A pod's directory on the host (working directories, `emptyDir` and `downwardAPI`).
pub(crate) fn pod_dir(state_dir: &std::path::Path, key: &ObjKey, uid: &str) -> PathBuf {
    state_dir
        .join(&*key.namespace)
        .join(format!("{}-{}", key.name, &uid[..uid.len().min(8)]))
}

/// A persistent volume claim's directory on the host (`.pvc` cannot be a namespace).
pub(crate) fn pvc_dir(state_dir: &std::path::Path, namespace: &str, claim: &str) -> PathBuf {
    state_dir.join(".pvc").join(namespace).join(claim)
}

fn backoff(restarts: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1u32 << restarts.min(5))
        .min(BACKOFF_MAX)
}

impl PodWorker {
    pub(super) fn new(
        ctx: Arc<KubeletCtx>,
        key: ObjKey,
        uid: String,
        pod: Value,
        signal: watch::Receiver<PodSignal>,
    ) -> Self {
        let mut containers: Vec<Container> = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| Container::from_spec(c, true))
            .collect();
        containers.extend(
            pod.pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| Container::from_spec(c, false)),
        );
        if ctx.external_workloads {
            // An origin outside the simulator answers for these pods: run nothing.
            containers.iter_mut().for_each(|c| c.local = false);
        }
        let dir = pod_dir(&ctx.state_dir, &key, &uid);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        PodWorker {
            app_cancel: ctx.shutdown.child_token(),
            ctx,
            key,
            uid,
            pod,
            containers,
            ip: None,
            dir,
            events_tx,
            events_rx,
            signal,
            phase: "Pending",
            start_time: None,
            conditions: Vec::new(),
            initialized: false,
        }
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Always")
    }

    fn set_condition(
        &mut self,
        kind: &'static str,
        status: bool,
        reason: Option<String>,
        message: Option<String>,
    ) {
        let now = now_rfc3339();
        match self.conditions.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => {
                if c.status != status {
                    c.since = now;
                }
                c.status = status;
                c.reason = reason;
                c.message = message;
            }
            None => self.conditions.push((
                kind,
                Condition {
                    status,
                    since: now,
                    reason,
                    message,
                },
            )),
        }
    }

    fn refresh_conditions(&mut self) {
        let pending_init: Vec<String> = self
            .containers
            .iter()
            .filter(|c| {
                c.init && !c.sidecar && !matches!(c.state, State::Terminated { code: 0, .. })
            })
            .map(|c| c.name.clone())
            .collect();
        self.initialized = pending_init.is_empty();
        if self.initialized {
            self.set_condition("Initialized", true, None, None);
        } else {
            self.set_condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized".into()),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    pending_init.join(" ")
                )),
            );
        }
        let unready: Vec<String> = self
            .containers
            .iter()
            .filter(|c| (!c.init || c.sidecar) && !c.ready)
            .map(|c| c.name.clone())
            .collect();
        let (reason, message) = if unready.is_empty() {
            (None, None)
        } else {
            (
                Some("ContainersNotReady".to_string()),
                Some(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                )),
            )
        };
        self.set_condition(
            "ContainersReady",
            unready.is_empty(),
            reason.clone(),
            message.clone(),
        );
        self.set_condition("Ready", unready.is_empty(), reason, message);
    }

    fn status_json(&self) -> Value {
        let order = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ];
        let conditions: Vec<Value> = order
            .iter()
            .filter_map(|k| self.conditions.iter().find(|(kind, _)| kind == k))
            .map(|(kind, c)| {
                let mut v = json!({"type": kind, "status": if c.status { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": c.since});
                if let Some(r) = &c.reason {
                    v["reason"] = json!(r);
                }
                if let Some(m) = &c.message {
                    v["message"] = json!(m);
                }
                v
            })
            .collect();
        let mut status = json!({
            "phase": self.phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "qosClass": self.pod.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
        });
        if let Some(ip) = self.ip {
            status["podIP"] = json!(ip.to_string());
            status["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        if let Some(t) = &self.start_time {
            status["startTime"] = json!(t);
        }
        let init: Vec<Value> = self
            .containers
            .iter()
            .filter(|c| c.init)
            .map(|c| c.status_json(&self.uid))
            .collect();
        let main: Vec<Value> = self
            .containers
            .iter()
            .filter(|c| !c.init)
            .map(|c| c.status_json(&self.uid))
            .collect();
        if !init.is_empty() {
            status["initContainerStatuses"] = json!(init);
        }
        status["containerStatuses"] = json!(main);
        status
    }

    /// Writes the current status; false when the pod is gone or was replaced.
    fn publish(&mut self) -> bool {
        self.refresh_conditions();
        let status = self.status_json();
        self.update_own(|v| v["status"] = status)
    }

    /// Rewrites this pod in the store, fenced by UID; false when it is gone or was
    /// replaced by another pod of the same name.
    fn update_own(&self, edit: impl FnOnce(&mut Value)) -> bool {
        let out = self
            .ctx
            .store
            .mutate(Kind::Pod, &self.key, |cur| match cur {
                Some(obj) if obj.uid == self.uid => {
                    let mut v = obj.value();
                    edit(&mut v);
                    Ok(Change::Put(v))
                }
                _ => Ok(Change::Keep),
            });
        matches!(
            out,
            Ok(Outcome::Stored { .. } | Outcome::Unchanged(Some(_)))
        )
    }

    fn signal_now(&self) -> PodSignal {
        *self.signal.borrow()
    }

    /// Sleeps, but wakes early when the pod is being deleted.
    async fn pause(&mut self, d: Duration) -> PodSignal {
        let deadline = tokio::time::sleep(d);
        tokio::pin!(deadline);
        loop {
            if self.signal_now() != PodSignal::Run {
                return self.signal_now();
            }
            tokio::select! {
                _ = &mut deadline => return PodSignal::Run,
                changed = self.signal.changed() => if changed.is_err() { return PodSignal::Gone },
            }
        }
    }

    pub(super) async fn run(mut self) {
        let delay = Duration::from_millis(self.ctx.faults.get().pod_start_delay_ms);
        if self.pause(delay).await != PodSignal::Run {
            return self.finish().await;
        }
        if !self.schedule() {
            return;
        }
        let ports = self.app_ports();
        match self.ctx.allocate_ip(&ports) {
            Ok((ip, listeners)) => {
                self.ip = Some(ip);
                for (listener, port) in listeners {
                    let id = Arc::new(AppIdentity {
                        pod: self.key.name.to_string(),
                        namespace: self.key.namespace.to_string(),
                    });
                    tracing::debug!(pod = %self.key.name, %ip, port, "built-in app listening");
                    tokio::spawn(app::serve(listener, id, self.app_cancel.clone()));
                }
            }
            Err(why) => {
                self.containers
                    .iter_mut()
                    .filter(|c| !c.init)
                    .for_each(|c| {
                        c.state = State::Waiting {
                            reason: "ContainerCreating".into(),
                            message: Some(why.clone()),
                        };
                    });
                self.set_condition("PodReadyToStartContainers", false, None, None);
                self.publish();
                tracing::warn!(pod = %self.key.name, "{why}");
                return self.wait_for_deletion().await;
            }
        }
        self.start_time = Some(now_rfc3339());
        self.set_condition("PodReadyToStartContainers", true, None, None);
        // Only local processes see the disk: pods stood in for by the built-in app (or
        // external workloads) get no directory, which keeps 100,000 pods cheap.
        if self.containers.iter().any(|c| c.local) {
            self.create_pod_dir();
        }
        if !self.publish() {
            return self.finish().await;
        }
        if !self.run_init_containers().await {
            return self.finish().await;
        }
        for idx in 0..self.containers.len() {
            if !self.containers[idx].init {
                self.start_container(idx);
            }
        }
        self.phase = "Running";
        if !self.publish() {
            return self.finish().await;
        }
        self.supervise().await;
        self.finish().await;
    }

    /// The pod's directory: a working directory per container and one per `emptyDir`.
    /// A `persistentVolumeClaim` volume is the claim's own directory, outside the pod's,
    /// so its files outlive the pod (until the claim is deleted).
    fn create_pod_dir(&self) {
        if let Err(e) = std::fs::create_dir_all(self.dir.join("volumes")) {
            tracing::warn!(pod = %self.key.name, error = %e, "cannot create the pod directory");
        }
        let volumes = self.pod.pointer("/spec/volumes").and_then(Value::as_array);
        for name in volumes
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("name").and_then(Value::as_str))
        {
            let _ = std::fs::create_dir_all(self.volume_dir(name));
        }
        super::downward::refresh(&self.dir, &self.pod);
    }

    /// Where volume `name` of this pod lives on the host.
    fn volume_dir(&self, name: &str) -> PathBuf {
        let claim = self
            .pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|v| v.pointer("/persistentVolumeClaim/claimName"))
            .and_then(Value::as_str);
        // The claim's UID is part of its directory: a new claim of the same name starts
        // empty, as a newly provisioned volume would.
        let uid = claim.and_then(|c| {
            self.ctx
                .store
                .get(
                    crate::store::Kind::PersistentVolumeClaim,
                    &ObjKey::new(&self.key.namespace, c),
                )
                .map(|o| o.uid.clone())
        });
        match (claim, uid) {
            (Some(c), Some(uid)) => pvc_dir(
                &self.ctx.state_dir,
                &self.key.namespace,
                &format!("{c}-{uid}"),
            ),
            _ => self.dir.join("volumes").join(name),
        }
    }

    /// Binds the pod to the node (what the scheduler's binding does).
    fn schedule(&mut self) -> bool {
        if !self.update_own(|v| v["spec"]["nodeName"] = json!(NODE_NAME)) {
            return false;
        }
        self.set_condition("PodScheduled", true, None, None);
        self.publish()
    }

    /// Ports the built-in app serves for this pod: the declared ports of its non-local
    /// containers, the `nogoo9/workspace-port` annotation, and 3000 when nothing is set.
    fn app_ports(&self) -> BTreeSet<u16> {
        let mut ports = BTreeSet::new();
        if self.ctx.external_workloads || self.containers.iter().all(|c| c.local) {
            return ports;
        }
        for c in self
            .containers
            .iter()
            .filter(|c| !c.local && (!c.init || c.sidecar))
        {
            for p in c
                .spec
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = p
                    .get("containerPort")
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                {
                    ports.insert(n);
                }
            }
        }
        let annotated = self
            .pod
            .pointer(&format!(
                "/metadata/annotations/{}",
                shared::names::WORKSPACE_PORT_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u16>().ok());
        if let Some(p) = annotated {
            ports.insert(p);
        }
        if ports.is_empty() && self.containers.iter().any(|c| !c.local && !c.init) {
            ports.insert(shared::names::DEFAULT_WORKSPACE_PORT);
        }
        ports
    }

    /// Env for a local process: the spec's env (values, field refs, config map refs),
    /// plus POD_IP, HOSTNAME, PATH and HOME, with mount paths substituted.
    fn process_spec(
        &self,
        c: &Container,
        command: &[String],
        args: &[String],
    ) -> Result<ProcessSpec, (String, String)> {
        let cwd = self.dir.join("containers").join(&c.name);
        let mounts: Vec<(String, PathBuf)> = c
            .spec
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    m.get("mountPath")?.as_str()?.to_string(),
                    self.volume_dir(m.get("name")?.as_str()?),
                ))
            })
            .collect();
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            ("HOME".into(), cwd.to_string_lossy().into_owned()),
            ("HOSTNAME".into(), self.key.name.to_string()),
            (
                "POD_IP".into(),
                self.ip.map(|i| i.to_string()).unwrap_or_default(),
            ),
        ];
        let set = |k: &str, v: String, env: &mut Vec<(String, String)>| {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v));
        };
        for from in c
            .spec
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(cm) = from.get("configMapRef") {
                let name = cm.get("name").and_then(Value::as_str).unwrap_or_default();
                let prefix = from
                    .get("prefix")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match self
                    .ctx
                    .store
                    .get(Kind::ConfigMap, &ObjKey::new(&self.key.namespace, name))
                {
                    Some(obj) => {
                        for (k, v) in obj
                            .value()
                            .get("data")
                            .and_then(Value::as_object)
                            .into_iter()
                            .flatten()
                        {
                            set(
                                &format!("{prefix}{k}"),
                                v.as_str().unwrap_or_default().to_string(),
                                &mut env,
                            );
                        }
                    }
                    None if cm.get("optional") == Some(&json!(true)) => {}
                    None => {
                        return Err((
                            "CreateContainerConfigError".into(),
                            format!("configmap \"{name}\" not found"),
                        ));
                    }
                }
            }
        }
        for e in c
            .spec
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
            if let Some(v) = e.get("value").and_then(Value::as_str) {
                set(name, v.to_string(), &mut env);
            } else if let Some(path) = e
                .pointer("/valueFrom/fieldRef/fieldPath")
                .and_then(Value::as_str)
            {
                let v = match path {
                    "status.podIP" => self.ip.map(|i| i.to_string()).unwrap_or_default(),
                    "status.hostIP" => "127.0.0.1".into(),
                    "metadata.name" => self.key.name.to_string(),
                    "metadata.namespace" => self.key.namespace.to_string(),
                    "metadata.uid" => self.uid.clone(),
                    "spec.nodeName" => NODE_NAME.into(),
                    "spec.serviceAccountName" => self
                        .pod
                        .pointer("/spec/serviceAccountName")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        .into(),
                    other => {
                        return Err((
                            "CreateContainerConfigError".into(),
                            format!("fieldRef {other:?} is not simulated by kube-sim"),
                        ));
                    }
                };
                set(name, v, &mut env);
            } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                let cm = r.get("name").and_then(Value::as_str).unwrap_or_default();
                let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
                let value = self
                    .ctx
                    .store
                    .get(Kind::ConfigMap, &ObjKey::new(&self.key.namespace, cm))
                    .and_then(|o| {
                        o.value()
                            .pointer(&format!("/data/{key}"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    });
                match value {
                    Some(v) => set(name, v, &mut env),
                    None if r.get("optional") == Some(&json!(true)) => {}
                    None => {
                        return Err((
                            "CreateContainerConfigError".into(),
                            format!(
                                "couldn't find key {key} in ConfigMap {}/{cm}",
                                self.key.namespace
                            ),
                        ));
                    }
                }
            } else if e.pointer("/valueFrom/secretKeyRef").is_some() {
                return Err((
                    "CreateContainerConfigError".into(),
                    "secrets are not simulated by kube-sim".into(),
                ));
            }
        }
        let subst = |items: &[String]| {
            items
                .iter()
                .map(|s| process::substitute_mounts(s, &mounts))
                .collect::<Vec<_>>()
        };
        let env = env
            .into_iter()
            .map(|(k, v)| (k, process::substitute_mounts(&v, &mounts)))
            .collect();
        let workdir = c
            .spec
            .get("workingDir")
            .and_then(Value::as_str)
            .map(|w| PathBuf::from(process::substitute_mounts(w, &mounts)));
        let cwd = workdir.filter(|w| w.starts_with(&self.dir)).unwrap_or(cwd);
        ProcessSpec::from_container(&subst(command), &subst(args), env, &cwd)
            .map_err(|e| ("CreateContainerError".into(), e))
    }

    /// Starts container `idx`: a local process, or the built-in app (already listening).
    fn start_container(&mut self, idx: usize) {
        let logs = self
            .ctx
            .logs
            .start_run(&self.uid, &self.containers[idx].name);
        let never_ready = self.ctx.faults.get().pods_never_ready;
        let c = &self.containers[idx];
        if !c.local {
            logs.push(format!(
                "[kube-sim] image {:?} cannot run here; the built-in workspace app stands in for it on {}",
                c.image,
                self.ip.map(|i| i.to_string()).unwrap_or_default()
            ));
            let c = &mut self.containers[idx];
            c.run += 1;
            c.state = State::Running {
                started: now_rfc3339(),
            };
            c.ready = !never_ready;
            return;
        }
        let spec = self.process_spec(c, &c.strings("command"), &c.strings("args"));
        let c = &mut self.containers[idx];
        c.run += 1;
        let spec = match spec {
            Ok(s) => s,
            Err((reason, message)) => {
                logs.push(format!("[kube-sim] {reason}: {message}"));
                logs.close();
                c.state = State::Waiting {
                    reason,
                    message: Some(message),
                };
                c.ready = false;
                return;
            }
        };
        match process::spawn(&spec, logs.clone()) {
            Ok((mut child, group)) => {
                c.group = Some(group);
                c.state = State::Running {
                    started: now_rfc3339(),
                };
                c.ready = !never_ready;
                let tx = self.events_tx.clone();
                let run = c.run;
                tokio::spawn(async move {
                    let code = process::exit_code(child.wait().await);
                    let _ = tx.send(WorkerEvent::Exited { idx, run, code });
                });
            }
            Err(e) => {
                logs.push(format!("[kube-sim] cannot start {:?}: {e}", spec.argv[0]));
                logs.close();
                let now = now_rfc3339();
                c.state = State::Terminated {
                    code: 128,
                    reason: "StartError".into(),
                    started: now.clone(),
                    finished: now,
                };
                c.ready = false;
                let _ = self.events_tx.send(WorkerEvent::Exited {
                    idx,
                    run: c.run,
                    code: 128,
                });
            }
        }
    }

    /// Runs the init containers in order; false when the pod will not start.
    async fn run_init_containers(&mut self) -> bool {
        let init: Vec<usize> = (0..self.containers.len())
            .filter(|i| self.containers[*i].init)
            .collect();
        for idx in init {
            if self.containers[idx].sidecar {
                self.start_container(idx);
                if !self.publish() {
                    return false;
                }
                continue;
            }
            loop {
                let code = self.run_to_completion(idx).await;
                let Some(code) = code else { return false };
                if code == 0 {
                    break;
                }
                if self.restart_policy() == "Never" {
                    self.phase = "Failed";
                    self.publish();
                    self.wait_for_deletion().await;
                    return false;
                }
                let wait = backoff(self.containers[idx].restarts);
                self.containers[idx].restarts += 1;
                if self.pause(wait).await != PodSignal::Run {
                    return false;
                }
            }
        }
        true
    }

    /// Runs one init container to its end; `None` when the pod is being deleted.
    async fn run_to_completion(&mut self, idx: usize) -> Option<i32> {
        let started = now_rfc3339();
        if !self.containers[idx].local {
            let logs = self
                .ctx
                .logs
                .start_run(&self.uid, &self.containers[idx].name);
            self.containers[idx].run += 1;
            self.containers[idx].state = State::Running {
                started: started.clone(),
            };
            self.publish();
            logs.push(format!(
                "[kube-sim] image {:?} cannot run here; init container {:?} simulated as succeeding",
                self.containers[idx].image, self.containers[idx].name
            ));
            if self.pause(SIMULATED_STEP).await != PodSignal::Run {
                return None;
            }
            logs.close();
            self.containers[idx].state = State::Terminated {
                code: 0,
                reason: "Completed".into(),
                started,
                finished: now_rfc3339(),
            };
            self.publish();
            return Some(0);
        }
        self.start_container(idx);
        self.publish();
        loop {
            let signal = self.signal_now();
            if signal != PodSignal::Run {
                return None;
            }
            let event = tokio::select! {
                e = self.events_rx.recv() => e,
                changed = self.signal.changed() => { if changed.is_err() { return None; } continue; }
            };
            match event {
                Some(WorkerEvent::Exited { idx: i, run, code })
                    if i == idx && run == self.containers[idx].run =>
                {
                    self.ctx
                        .logs
                        .current(&self.uid, &self.containers[idx].name)
                        .close();
                    let reason = if code == 0 { "Completed" } else { "Error" };
                    let started = match &self.containers[idx].state {
                        State::Running { started } => started.clone(),
                        _ => now_rfc3339(),
                    };
                    self.containers[idx].state = State::Terminated {
                        code,
                        reason: reason.into(),
                        started,
                        finished: now_rfc3339(),
                    };
                    self.containers[idx].group = None;
                    self.publish();
                    return Some(code);
                }
                Some(_) => {}
                None => return None,
            }
        }
    }

    /// Watches running containers until the pod is deleted, restarting per policy.
    async fn supervise(&mut self) {
        loop {
            if self.signal_now() != PodSignal::Run {
                return;
            }
            let event = tokio::select! {
                e = self.events_rx.recv() => e,
                changed = self.signal.changed() => { if changed.is_err() { return; } continue; }
            };
            match event {
                Some(WorkerEvent::Exited { idx, run, code }) if run == self.containers[idx].run => {
                    self.on_exit(idx, code)
                }
                Some(WorkerEvent::RestartDue { idx }) => {
                    self.start_container(idx);
                    self.publish();
                }
                Some(_) => {}
                None => return,
            }
        }
    }

    fn on_exit(&mut self, idx: usize, code: i32) {
        self.ctx
            .logs
            .mark_exited(&self.uid, &self.containers[idx].name);
        let policy = self.restart_policy().to_string();
        let c = &mut self.containers[idx];
        let started = match &c.state {
            State::Running { started } => started.clone(),
            _ => now_rfc3339(),
        };
        let terminated = State::Terminated {
            code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started,
            finished: now_rfc3339(),
        };
        c.group = None;
        c.ready = false;
        let restart = c.sidecar || policy == "Always" || (policy == "OnFailure" && code != 0);
        if restart {
            let wait = backoff(c.restarts);
            c.last = Some(terminated);
            c.restarts += 1;
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={} pod={}_{}({})",
                    wait.as_secs(),
                    c.name,
                    self.key.name,
                    self.key.namespace,
                    self.uid
                )),
            };
            let tx = self.events_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = tx.send(WorkerEvent::RestartDue { idx });
            });
        } else {
            c.state = terminated;
            let mains: Vec<&Container> = self.containers.iter().filter(|c| !c.init).collect();
            if mains
                .iter()
                .all(|c| matches!(c.state, State::Terminated { .. }))
            {
                let failed = mains
                    .iter()
                    .any(|c| matches!(c.state, State::Terminated { code, .. } if code != 0));
                self.phase = if failed { "Failed" } else { "Succeeded" };
            }
        }
        self.publish();
    }

    async fn wait_for_deletion(&mut self) {
        while self.signal_now() == PodSignal::Run {
            if self.signal.changed().await.is_err() {
                return;
            }
        }
    }

    /// Graceful termination (preStop hooks, SIGTERM, grace period, SIGKILL) when the pod
    /// was deleted with a grace period; immediate kill when it is already gone.
    async fn finish(mut self) {
        self.wait_for_deletion().await;
        let graceful = self.signal_now() == PodSignal::Terminate;
        if graceful {
            let grace = self
                .ctx
                .store
                .get(Kind::Pod, &self.key)
                .filter(|o| o.uid == self.uid)
                .and_then(|o| {
                    o.value()
                        .pointer("/metadata/deletionGracePeriodSeconds")
                        .and_then(Value::as_u64)
                });
            let deadline = tokio::time::Instant::now() + Duration::from_secs(grace.unwrap_or(30));
            self.run_pre_stop_hooks(deadline).await;
            self.stop_processes(deadline).await;
        } else {
            self.stop_processes(tokio::time::Instant::now()).await;
        }
        self.app_cancel.cancel();
        let now = now_rfc3339();
        for c in self.containers.iter_mut() {
            if let State::Running { started } = &c.state {
                c.state = State::Terminated {
                    code: 0,
                    reason: "Completed".into(),
                    started: started.clone(),
                    finished: now.clone(),
                };
            }
            c.ready = false;
        }
        if graceful {
            let failed = self
                .containers
                .iter()
                .any(|c| !c.init && matches!(c.state, State::Terminated { code, .. } if code != 0));
            if self.phase == "Running" || self.phase == "Pending" {
                self.phase = if failed { "Failed" } else { "Succeeded" };
            }
            self.publish();
            // The kubelet's final delete, fenced by UID.
            let uid = self.uid.clone();
            let _ = self
                .ctx
                .store
                .mutate(Kind::Pod, &self.key, |cur| match cur {
                    Some(obj) if obj.uid == uid => Ok(Change::Delete),
                    _ => Ok(Change::Keep),
                });
        }
        if let Some(ip) = self.ip {
            self.ctx.release_ip(ip);
        }
        self.ctx.logs.remove_pod(&self.uid);
        if self.containers.iter().any(|c| c.local) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn run_pre_stop_hooks(&mut self, deadline: tokio::time::Instant) {
        let mut hooks = Vec::new();
        for c in self.containers.iter().filter(|c| c.running()) {
            let Some(hook) = c.spec.pointer("/lifecycle/preStop") else {
                continue;
            };
            let logs = self.ctx.logs.current(&self.uid, &c.name);
            if let Some(cmd) = hook.pointer("/exec/command").and_then(Value::as_array) {
                let argv: Vec<String> = cmd
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                if c.local {
                    match self.process_spec(c, &argv, &[]) {
                        Ok(spec) => hooks.push((c.name.clone(), Some(spec), logs)),
                        Err((_, why)) => {
                            logs.push(format!("[kube-sim] preStop hook failed: {why}"))
                        }
                    }
                } else {
                    logs.push(format!("[kube-sim] preStop hook exec {argv:?} simulated as succeeding (image {:?} cannot run here)", c.image));
                    hooks.push((c.name.clone(), None, logs));
                }
            } else if let Some(secs) = hook.pointer("/sleep/seconds").and_then(Value::as_u64) {
                logs.push(format!("[kube-sim] preStop hook sleep {secs}s"));
                let until = (tokio::time::Instant::now() + Duration::from_secs(secs)).min(deadline);
                tokio::time::sleep_until(until).await;
            } else {
                logs.push(
                    "[kube-sim] preStop hook (httpGet/tcpSocket) simulated as succeeding"
                        .to_string(),
                );
            }
        }
        let runs = hooks.into_iter().map(|(name, spec, logs)| async move {
            let Some(spec) = spec else {
                tokio::time::sleep(SIMULATED_STEP).await;
                return;
            };
            match process::spawn(&spec, logs.clone()) {
                Ok((mut child, group)) => {
                    let code = tokio::time::timeout_at(deadline, child.wait()).await;
                    match code {
                        Ok(status) => logs.push(format!("[kube-sim] preStop hook of {name} exited with {}", process::exit_code(status))),
                        Err(_) => {
                            group.signal(UnixSignal::SIGKILL);
                            logs.push(format!("[kube-sim] preStop hook of {name} killed at the end of the grace period"));
                        }
                    }
                }
                Err(e) => logs.push(format!("[kube-sim] preStop hook of {name} could not start: {e}")),
            }
        });
        futures::future::join_all(runs).await;
    }

    async fn stop_processes(&mut self, deadline: tokio::time::Instant) {
        let groups: Vec<(usize, u64, ProcessGroup)> = self
            .containers
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.group.map(|g| (i, c.run, g)))
            .collect();
        if groups.is_empty() {
            return;
        }
        for (_, _, g) in &groups {
            g.signal(UnixSignal::SIGTERM);
        }
        let mut alive: Vec<(usize, u64, ProcessGroup)> = groups;
        let timer = tokio::time::sleep_until(deadline);
        tokio::pin!(timer);
        while !alive.is_empty() {
            tokio::select! {
                _ = &mut timer => break,
                e = self.events_rx.recv() => match e {
                    Some(WorkerEvent::Exited { idx, run, code }) => {
                        alive.retain(|(i, r, _)| !(*i == idx && *r == run));
                        let c = &mut self.containers[idx];
                        if c.run == run {
                            let started = match &c.state { State::Running { started } => started.clone(), _ => now_rfc3339() };
                            c.state = State::Terminated { code, reason: if code == 0 { "Completed" } else { "Error" }.into(), started, finished: now_rfc3339() };
                            c.group = None;
                        }
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        for (idx, run, g) in alive {
            g.signal(UnixSignal::SIGKILL);
            let c = &mut self.containers[idx];
            if c.run == run {
                let started = match &c.state {
                    State::Running { started } => started.clone(),
                    _ => now_rfc3339(),
                };
                c.state = State::Terminated {
                    code: 137,
                    reason: "Error".into(),
                    started,
                    finished: now_rfc3339(),
                };
                c.group = None;
            }
        }
        for c in self.containers.iter() {
            self.ctx.logs.current(&self.uid, &c.name).close();
        }
    }
}

/// Binds the app's listeners on `ip`; used to probe an address before it is handed out.
pub(super) fn bind_all(
    ip: Ipv4Addr,
    ports: &BTreeSet<u16>,
) -> std::io::Result<Vec<(tokio::net::TcpListener, u16)>> {
    let mut out = Vec::new();
    for port in ports {
        let addr = SocketAddr::new(IpAddr::V4(ip), *port);
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        out.push((socket.listen(1024)?, *port));
    }
    Ok(out)
}
