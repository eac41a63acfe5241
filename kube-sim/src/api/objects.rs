//! create, get, update, patch, delete and deletecollection on single objects, with
//! the admission rules that matter to the product: namespaces must exist and be active,
//! service accounts must exist (ServiceAccount admission), pods terminate gracefully.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};

use super::{ApiState, Call, Reply, table};
use crate::patch::{self, PatchType};
use crate::resources::{self, UpdateScope, now_rfc3339};
use crate::status::{ApiError, ApiResult, Reason, success_status};
use crate::store::{Change, Kind, ObjKey, Outcome, ReadAt, Store, StoredObj};
use crate::validate::FieldValidation;

/// Namespaces that cannot be deleted, as on a real cluster.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

fn key_for(kind: Kind, namespace: Option<&str>, name: &str) -> ObjKey {
    if kind.namespaced() {
        ObjKey::new(namespace.unwrap_or_default(), name)
    } else {
        ObjKey::new("", name)
    }
}

fn dry_run(call: &Call) -> ApiResult<bool> {
    match call.query.get("dryRun") {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
        ))),
    }
}

fn object_reply(status: StatusCode, kind: Kind, obj: &StoredObj, call: &Call) -> Reply {
    if table::wants_table(&call.accept) {
        let include = call.query.get("includeObject").unwrap_or("Metadata");
        return Reply::json(
            status,
            &table::render(
                kind,
                &[obj.value()],
                json!({"resourceVersion": obj.rv.to_string()}),
                include,
            ),
        );
    }
    Reply::bytes(status, obj.json.clone())
}

/// 404 for a missing namespace, 403 for a terminating one (the real admission errors).
fn check_namespace_accepts(
    state: &ApiState,
    namespace: &str,
    kind: Kind,
    name: &str,
) -> ApiResult<()> {
    let ns = state
        .store
        .get(Kind::Namespace, &ObjKey::new("", namespace))
        .ok_or_else(|| ApiError::not_found("namespaces", "", namespace))?;
    if ns.fields.phase == "Terminating" {
        return Err(ApiError::new(
            Reason::Forbidden,
            format!("{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated", kind.resource()),
        )
        .with_details(kind.resource(), kind.group(), name));
    }
    Ok(())
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_name(prefix: &str) -> String {
    let prefix: String = prefix.chars().take(58).collect();
    let suffix: String = (0..5)
        .map(|_| GENERATE_ALPHABET[rand::random_range(0..GENERATE_ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// `POST` on a collection.
pub fn create(
    state: &ApiState,
    kind: Kind,
    namespace: Option<&str>,
    call: &Call,
) -> ApiResult<Reply> {
    if kind.namespaced() && namespace.is_none() {
        return Err(ApiError::new(
            Reason::MethodNotAllowed,
            format!(
                "the server does not allow this method on the requested resource: {} are created in a namespace",
                kind.resource()
            ),
        ));
    }
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let dry = dry_run(call)?;
    let body = call
        .json_body()?
        .ok_or_else(|| ApiError::bad_request("the request body is empty"))?;
    let decoded = resources::decode(kind, &body, mode)?;
    let meta = &decoded.value["metadata"];
    if let (Some(path_ns), Some(body_ns)) =
        (namespace, meta.get("namespace").and_then(Value::as_str))
        && !body_ns.is_empty()
        && body_ns != path_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let generate = meta
        .get("generateName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if name.is_none() && generate.is_none() {
        return Err(ApiError::invalid(
            kind.kind(),
            kind.resource(),
            "",
            "",
            vec![crate::status::Cause {
                reason: "FieldValueRequired",
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            }],
        ));
    }
    let ns = namespace.unwrap_or_default();
    if kind.namespaced() {
        check_namespace_accepts(
            state,
            ns,
            kind,
            name.as_deref().or(generate.as_deref()).unwrap_or_default(),
        )?;
    }
    if kind == Kind::Pod {
        let sa = decoded
            .value
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        if state
            .store
            .get(Kind::ServiceAccount, &ObjKey::new(ns, sa))
            .is_none()
        {
            let shown = name.as_deref().or(generate.as_deref()).unwrap_or_default();
            return Err(ApiError::new(
                Reason::Forbidden,
                format!("pods \"{shown}\" is forbidden: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"),
            )
            .with_details("pods", "", shown));
        }
    }
    // generateName: retry a few names on collision, like the real server's retries.
    for _ in 0..8 {
        let final_name = match (&name, &generate) {
            (Some(n), _) => n.clone(),
            (None, Some(prefix)) => generated_name(prefix),
            (None, None) => unreachable_name()?,
        };
        let value = resources::admit_create(kind, ns, &final_name, decoded.value.clone())?;
        if dry {
            let probe = StoredObjPreview::new(kind, ns, &final_name, value)?;
            return Ok(Reply::json(StatusCode::CREATED, &probe).with_warnings(&decoded.warnings));
        }
        let key = key_for(kind, namespace, &final_name);
        let out = state.store.mutate(kind, &key, |cur| match cur {
            Some(_) => Err(ApiError::already_exists(
                kind.resource(),
                kind.group(),
                &final_name,
            )),
            None => Ok(Change::Put(value)),
        });
        match out {
            Ok(Outcome::Stored { obj, .. }) => {
                if kind == Kind::Namespace {
                    seed_namespace(state, &final_name);
                }
                return Ok(object_reply(StatusCode::CREATED, kind, &obj, call)
                    .with_warnings(&decoded.warnings));
            }
            Err(e) if e.reason == Reason::AlreadyExists && name.is_none() => continue,
            Err(e) => return Err(e),
            Ok(_) => return Err(ApiError::internal("create did not store the object")),
        }
    }
    Err(ApiError::already_exists(
        kind.resource(),
        kind.group(),
        generate.as_deref().unwrap_or_default(),
    ))
}

fn unreachable_name() -> ApiResult<String> {
    Err(ApiError::internal("no name to create"))
}

/// A dry-run result: the object as it would be stored, without storing it.
struct StoredObjPreview;

impl StoredObjPreview {
    #[allow(clippy::new_ret_no_self)]
    fn new(_kind: Kind, _ns: &str, _name: &str, mut value: Value) -> ApiResult<Value> {
        value["metadata"]["resourceVersion"] = json!("");
        Ok(value)
    }
}

/// What the namespace and service-account controllers create in a new namespace.
pub fn seed_namespace(state: &ApiState, namespace: &str) {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    let ca = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n(kube-sim)\n-----END CERTIFICATE-----\n"}});
    for (kind, name, body) in [
        (Kind::ServiceAccount, "default", sa),
        (Kind::ConfigMap, "kube-root-ca.crt", ca),
    ] {
        let Ok(value) = resources::admit_create(kind, namespace, name, body) else {
            continue;
        };
        let _ = state
            .store
            .mutate(kind, &ObjKey::new(namespace, name), |cur| {
                Ok(if cur.is_some() {
                    Change::Keep
                } else {
                    Change::Put(value)
                })
            });
    }
}

pub fn get(
    state: &ApiState,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
    call: &Call,
) -> ApiResult<Reply> {
    let key = key_for(kind, namespace, name);
    let obj = match call.query.get("resourceVersion") {
        Some(rv) if rv != "0" => {
            let rv = rv
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
            let (_, objects) = state.store.read(kind, ReadAt::NotOlderThan(rv))?;
            objects.get(&key).cloned()
        }
        _ => state.store.get(kind, &key),
    };
    let obj = obj.ok_or_else(|| ApiError::not_found(kind.resource(), kind.group(), name))?;
    Ok(object_reply(StatusCode::OK, kind, &obj, call))
}

fn scope(sub: Option<&str>) -> ApiResult<UpdateScope> {
    match sub {
        None => Ok(UpdateScope::Main),
        Some("status") => Ok(UpdateScope::Status),
        Some(other) => Err(ApiError::new(
            Reason::MethodNotAllowed,
            format!("the server does not allow this method on the requested resource ({other})"),
        )),
    }
}

/// `PUT`: replace the object, with optimistic concurrency on `resourceVersion`.
pub fn update(
    state: &ApiState,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
    sub: Option<&str>,
    call: &Call,
) -> ApiResult<Reply> {
    let scope = scope(sub)?;
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let dry = dry_run(call)?;
    let body = call
        .json_body()?
        .ok_or_else(|| ApiError::bad_request("the request body is empty"))?;
    let decoded = resources::decode(kind, &body, mode)?;
    if let Some(body_name) = decoded
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if let (Some(path_ns), Some(body_ns)) = (
        namespace,
        decoded
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str),
    ) && !body_ns.is_empty()
        && body_ns != path_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    write_existing(
        state,
        kind,
        namespace,
        name,
        dry,
        call,
        &decoded.warnings,
        |old| resources::admit_update(kind, old, decoded.value.clone(), scope),
    )
}

/// `PATCH`: JSON patch, merge patch or strategic merge patch.
pub fn patch(
    state: &ApiState,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
    sub: Option<&str>,
    call: &Call,
) -> ApiResult<Reply> {
    let scope = scope(sub)?;
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let dry = dry_run(call)?;
    let ptype = PatchType::from_content_type(&call.content_type)?;
    let mut warnings = Vec::new();
    let result = write_existing(state, kind, namespace, name, dry, call, &[], |old| {
        let patched = patch::apply(&old.value(), &call.body, ptype)?;
        let decoded = resources::decode(kind, &patched, mode)?;
        warnings = decoded.warnings;
        resources::admit_update(kind, old, decoded.value, scope)
    })?;
    Ok(result.with_warnings(&warnings))
}

#[allow(clippy::too_many_arguments)]
fn write_existing<F>(
    state: &ApiState,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
    dry: bool,
    call: &Call,
    warnings: &[String],
    build: F,
) -> ApiResult<Reply>
where
    F: FnOnce(&StoredObj) -> ApiResult<Value>,
{
    let key = key_for(kind, namespace, name);
    if dry {
        let old = state
            .store
            .get(kind, &key)
            .ok_or_else(|| ApiError::not_found(kind.resource(), kind.group(), name))?;
        let value = build(&old)?;
        return Ok(Reply::json(StatusCode::OK, &value).with_warnings(warnings));
    }
    let out = state.store.mutate(kind, &key, |cur| {
        let old = cur.ok_or_else(|| ApiError::not_found(kind.resource(), kind.group(), name))?;
        Ok(Change::Put(build(old)?))
    })?;
    match out {
        Outcome::Stored { obj, .. } | Outcome::Unchanged(Some(obj)) => {
            Ok(object_reply(StatusCode::OK, kind, &obj, call).with_warnings(warnings))
        }
        _ => Err(ApiError::internal("update did not store the object")),
    }
}

/// Delete options from the query string and the optional `DeleteOptions` body.
struct DeleteOptions {
    grace: Option<i64>,
    uid: Option<String>,
    resource_version: Option<String>,
}

fn delete_options(call: &Call) -> ApiResult<DeleteOptions> {
    let body = call.json_body()?.unwrap_or(Value::Null);
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && kind != "DeleteOptions"
    {
        return Err(ApiError::bad_request(format!(
            "the body must be a DeleteOptions, not {kind}"
        )));
    }
    let grace = match call.query.int("gracePeriodSeconds")? {
        Some(g) => Some(g),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    if grace.is_some_and(|g| g < 0) {
        return Err(ApiError::invalid(
            "DeleteOptions",
            "",
            "",
            "",
            vec![crate::status::Cause::invalid(
                "gracePeriodSeconds",
                &grace.unwrap_or_default().to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    if let Some(policy) = call
        .query
        .get("propagationPolicy")
        .or(body.get("propagationPolicy").and_then(Value::as_str))
        && !["Orphan", "Background", "Foreground"].contains(&policy)
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    Ok(DeleteOptions {
        grace,
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

enum Deleted {
    Gone(Arc<StoredObj>),
    Terminating(Arc<StoredObj>),
}

fn delete_one(
    store: &Arc<Store>,
    kind: Kind,
    key: &ObjKey,
    opts: &DeleteOptions,
    dry: bool,
) -> ApiResult<Deleted> {
    let name = key.name.to_string();
    if kind == Kind::Namespace && PROTECTED_NAMESPACES.contains(&name.as_str()) {
        return Err(ApiError::new(
            Reason::Forbidden,
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        )
        .with_details("namespaces", "", &name));
    }
    let mut graceful = false;
    let out = store.mutate(kind, key, |cur| {
        let old = cur.ok_or_else(|| ApiError::not_found(kind.resource(), kind.group(), &name))?;
        if let Some(uid) = &opts.uid
            && *uid != old.uid {
                return Err(ApiError::conflict(kind.resource(), kind.group(), &name, &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", old.uid)));
            }
        if let Some(rv) = &opts.resource_version
            && *rv != old.rv.to_string() {
                return Err(ApiError::conflict(kind.resource(), kind.group(), &name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", old.rv)));
            }
        let mut value = old.value();
        match kind {
            Kind::Pod => {
                let scheduled = value.pointer("/spec/nodeName").is_some();
                let default_grace = value.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
                let grace = opts.grace.unwrap_or(default_grace);
                let current = value.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
                if grace == 0 || !scheduled {
                    return Ok(if dry { Change::Keep } else { Change::Delete });
                }
                graceful = true;
                if current.is_some_and(|c| c <= grace) {
                    // Already terminating with a shorter (or equal) grace period.
                    return Ok(Change::Keep);
                }
                let at = k8s_openapi::jiff::Timestamp::now()
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(grace))
                    .map(|t| t.round(k8s_openapi::jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_default())
                    .unwrap_or_else(|_| now_rfc3339());
                value["metadata"]["deletionTimestamp"] = json!(at);
                value["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                Ok(if dry { Change::Keep } else { Change::Put(value) })
            }
            Kind::Namespace => {
                graceful = true;
                if value.pointer("/metadata/deletionTimestamp").is_some() {
                    return Ok(Change::Keep);
                }
                value["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                value["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                value["status"] = json!({"phase": "Terminating"});
                Ok(if dry { Change::Keep } else { Change::Put(value) })
            }
            _ => Ok(if dry { Change::Keep } else { Change::Delete }),
        }
    })?;
    let obj = match out {
        Outcome::Stored { obj, .. } | Outcome::Deleted(obj) | Outcome::Unchanged(Some(obj)) => obj,
        Outcome::Unchanged(None) => {
            return Err(ApiError::not_found(kind.resource(), kind.group(), &name));
        }
    };
    if kind == Kind::Namespace && !dry {
        spawn_namespace_cleanup(store.clone(), name);
    }
    Ok(if graceful {
        Deleted::Terminating(obj)
    } else {
        Deleted::Gone(obj)
    })
}

/// `DELETE` on one object.
pub fn delete(
    state: &ApiState,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
    call: &Call,
) -> ApiResult<Reply> {
    let opts = delete_options(call)?;
    let dry = dry_run(call)?;
    match delete_one(
        &state.store,
        kind,
        &key_for(kind, namespace, name),
        &opts,
        dry,
    )? {
        Deleted::Terminating(obj) => Ok(object_reply(StatusCode::OK, kind, &obj, call)),
        // The registries with `ReturnDeletedObject` answer the object they deleted (as the
        // official clients, which decode a Pod from `delete_namespaced_pod`, expect);
        // the rest answer a Status.
        Deleted::Gone(obj) if kind.returns_deleted_object() => {
            Ok(object_reply(StatusCode::OK, kind, &obj, call))
        }
        Deleted::Gone(obj) => Ok(Reply::json(
            StatusCode::OK,
            &success_status(kind.resource(), name, &obj.uid),
        )),
    }
}

/// `DELETE` on a collection (with selectors).
pub fn delete_collection(
    state: &ApiState,
    kind: Kind,
    namespace: Option<&str>,
    call: &Call,
) -> ApiResult<Reply> {
    if kind == Kind::Namespace {
        return Err(ApiError::new(
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        ));
    }
    let opts = delete_options(call)?;
    let dry = dry_run(call)?;
    let labels = crate::selectors::LabelSelector::parse(
        call.query.get("labelSelector").unwrap_or_default(),
    )?;
    let fields = crate::selectors::FieldSelector::parse(
        call.query.get("fieldSelector").unwrap_or_default(),
        kind.kind(),
        kind == Kind::Pod,
    )?;
    let (rv, objects) = state.store.read(kind, ReadAt::Latest)?;
    let mut items = Vec::new();
    for obj in objects.values() {
        if namespace.is_some_and(|ns| ns != &*obj.key.namespace)
            || !labels.matches(&obj.labels)
            || !fields.matches(&obj.fields)
        {
            continue;
        }
        match delete_one(&state.store, kind, &obj.key, &opts, dry) {
            Ok(Deleted::Gone(o) | Deleted::Terminating(o)) => items.push(o.value()),
            Err(e) if e.reason == Reason::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::json(
        StatusCode::OK,
        &json!({"kind": format!("{}List", kind.kind()), "apiVersion": kind.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}

/// The namespace controller: delete everything in a terminating namespace, wait for its
/// pods to finish terminating, then remove the namespace.
fn spawn_namespace_cleanup(store: Arc<Store>, namespace: String) {
    tokio::spawn(async move {
        let opts = DeleteOptions {
            grace: None,
            uid: None,
            resource_version: None,
        };
        loop {
            let mut remaining = 0;
            for kind in [
                Kind::Pod,
                Kind::ConfigMap,
                Kind::ServiceAccount,
                Kind::Event,
                Kind::Lease,
            ] {
                let Ok((_, objects)) = store.read(kind, ReadAt::Latest) else {
                    continue;
                };
                for obj in objects
                    .values()
                    .filter(|o| &*o.key.namespace == namespace.as_str())
                {
                    remaining += 1;
                    // Already-terminating pods are left to finish their grace period.
                    let _ = delete_one(&store, kind, &obj.key, &opts, false);
                }
            }
            if remaining == 0 {
                let _ = store.mutate(Kind::Namespace, &ObjKey::new("", &namespace), |cur| {
                    Ok(if cur.is_some_and(|c| c.fields.phase == "Terminating") {
                        Change::Delete
                    } else {
                        Change::Keep
                    })
                });
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
}
