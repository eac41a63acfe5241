//! The Kubernetes REST API over HTTP: path routing, authentication, authorization, fault
//! injection, and the verbs (get, list, watch, create, update, patch, delete,
//! deletecollection) on namespaces, pods (+ `log`, `status`), config maps and service
//! accounts, plus SelfSubjectAccessReview and discovery.

mod discovery;
mod objects;
pub use objects::seed_namespace;
mod pod_logs;
pub mod table;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Attributes, Authorizer};
use super::faults::{FaultState, Faults};
use super::kubelet::Kubelet;
use super::status::{ApiError, ApiResult, Reason};
use super::store::{Kind, Store};

/// The real server's request body limit.
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Everything a request handler needs.
pub struct ApiState {
    pub store: Arc<Store>,
    pub kubelet: Arc<Kubelet>,
    pub faults: Arc<FaultState>,
    pub authorizer: Authorizer,
    pub token: String,
    pub bookmark_interval: Duration,
    pub server_address: String,
    pub shutdown: CancellationToken,
}

/// A parsed query string (last value wins, like Go's `url.Values.Get`).
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode_component(k), decode_component(v));
        }
        Query(map)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        self.get(k)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid value for {k}: {v:?} is not an integer"))
                })
            })
            .transpose()
    }
}

/// Percent-decodes a query component (`+` is a space); bad escapes stay as they are.
pub(crate) fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Version,
    Health,
    Api,
    CoreV1,
    Apis,
    AuthzGroup,
    AuthzV1,
    CoordinationGroup,
    CoordinationV1,
    Ssar,
    Faults,
    OpenApiRoot,
    OpenApiCore,
    Resource {
        kind: Kind,
        namespace: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn route(path: &str) -> ApiResult<Target> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let not_found = || {
        ApiError::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )
    };
    let kind_of = |r: &str| Kind::from_resource(r).ok_or_else(not_found);
    Ok(match parts.as_slice() {
        ["version"] => Target::Version,
        ["healthz" | "livez" | "readyz"] => Target::Health,
        ["api"] => Target::Api,
        ["api", "v1"] => Target::CoreV1,
        ["apis"] => Target::Apis,
        ["apis", discovery::AUTHZ_GROUP] => Target::AuthzGroup,
        ["apis", crate::store::COORDINATION_GROUP] => Target::CoordinationGroup,
        ["apis", crate::store::COORDINATION_GROUP, "v1"] => Target::CoordinationV1,
        [
            "apis",
            group @ crate::store::COORDINATION_GROUP,
            "v1",
            "namespaces",
            ns,
            res,
        ] => Target::Resource {
            kind: Kind::from_group_resource(group, res).ok_or_else(not_found)?,
            namespace: Some((*ns).into()),
            name: None,
            sub: None,
        },
        [
            "apis",
            group @ crate::store::COORDINATION_GROUP,
            "v1",
            "namespaces",
            ns,
            res,
            name,
        ] => Target::Resource {
            kind: Kind::from_group_resource(group, res).ok_or_else(not_found)?,
            namespace: Some((*ns).into()),
            name: Some((*name).into()),
            sub: None,
        },
        ["apis", group @ crate::store::COORDINATION_GROUP, "v1", res] => Target::Resource {
            kind: Kind::from_group_resource(group, res).ok_or_else(not_found)?,
            namespace: None,
            name: None,
            sub: None,
        },
        ["apis", discovery::AUTHZ_GROUP, "v1"] => Target::AuthzV1,
        [
            "apis",
            discovery::AUTHZ_GROUP,
            "v1",
            "selfsubjectaccessreviews",
        ] => Target::Ssar,
        ["sim", "v1", "faults"] => Target::Faults,
        ["openapi", "v3"] => Target::OpenApiRoot,
        ["openapi", "v3", "api", "v1"] => Target::OpenApiCore,
        ["api", "v1", "namespaces"] => Target::Resource {
            kind: Kind::Namespace,
            namespace: None,
            name: None,
            sub: None,
        },
        ["api", "v1", "namespaces", name] => Target::Resource {
            kind: Kind::Namespace,
            namespace: None,
            name: Some((*name).into()),
            sub: None,
        },
        ["api", "v1", "namespaces", name, "status"] => Target::Resource {
            kind: Kind::Namespace,
            namespace: None,
            name: Some((*name).into()),
            sub: Some("status".into()),
        },
        ["api", "v1", "namespaces", ns, res] => Target::Resource {
            kind: kind_of(res)?,
            namespace: Some((*ns).into()),
            name: None,
            sub: None,
        },
        ["api", "v1", "namespaces", ns, res, name] => Target::Resource {
            kind: kind_of(res)?,
            namespace: Some((*ns).into()),
            name: Some((*name).into()),
            sub: None,
        },
        ["api", "v1", "namespaces", ns, res, name, sub] => {
            let kind = kind_of(res)?;
            let supported = matches!((kind, *sub), (Kind::Pod, "log" | "status"));
            if !supported {
                return Err(not_found());
            }
            Target::Resource {
                kind,
                namespace: Some((*ns).into()),
                name: Some((*name).into()),
                sub: Some((*sub).into()),
            }
        }
        ["api", "v1", res] => {
            let kind = kind_of(res)?;
            Target::Resource {
                kind,
                namespace: None,
                name: None,
                sub: None,
            }
        }
        _ => return Err(not_found()),
    })
}

/// A response under construction: JSON value or raw bytes, status and extra headers.
pub struct Reply {
    status: StatusCode,
    body: Body,
    content_type: &'static str,
    warnings: Vec<String>,
    retry_after: Option<u32>,
}

impl Reply {
    pub fn json(status: StatusCode, value: &Value) -> Self {
        Reply::bytes(
            status,
            Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        )
    }

    pub fn bytes(status: StatusCode, bytes: Bytes) -> Self {
        Reply {
            status,
            body: Body::from(bytes),
            content_type: "application/json",
            warnings: Vec::new(),
            retry_after: None,
        }
    }

    pub fn stream(body: Body, content_type: &'static str) -> Self {
        Reply {
            status: StatusCode::OK,
            body,
            content_type,
            warnings: Vec::new(),
            retry_after: None,
        }
    }

    fn with_warnings(mut self, unknown: &[String]) -> Self {
        self.warnings
            .extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
        self
    }

    fn error(err: &ApiError) -> Self {
        let status =
            StatusCode::from_u16(err.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = Reply::json(status, &err.to_status());
        r.retry_after = err.retry_after_seconds;
        r
    }

    fn into_response(self) -> Response<Body> {
        let mut resp = Response::new(self.body);
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            "audit-id",
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("0")),
        );
        for w in self.warnings {
            if let Ok(v) = HeaderValue::from_str(&format!(
                "299 - {}",
                serde_json::to_string(&w).unwrap_or_default()
            )) {
                headers.append(header::WARNING, v);
            }
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The request as handlers see it.
pub struct Call {
    pub method: Method,
    pub query: Query,
    pub content_type: String,
    pub accept: String,
    pub body: Bytes,
}

impl Call {
    /// The body as JSON (decoded from protobuf when sent so); an empty body is `None`.
    pub fn json_body(&self) -> ApiResult<Option<Value>> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let base = self
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        if base == "application/vnd.kubernetes.protobuf" {
            return crate::protobuf::decode(&self.body)
                .map(Some)
                .map_err(|why| ApiError::new(Reason::UnsupportedMediaType, why));
        }
        if !base.is_empty()
            && base != "application/json"
            && !base.ends_with("+json")
            && base != "*/*"
        {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf (got {base:?})"
                ),
            ));
        }
        serde_json::from_slice(&self.body).map(Some).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })
    }
}

fn verb_for(
    method: &Method,
    has_name: bool,
    query: &Query,
    sub: Option<&str>,
) -> ApiResult<&'static str> {
    Ok(match (method.as_str(), has_name) {
        ("GET" | "HEAD", false) if query.flag("watch") => "watch",
        ("GET" | "HEAD", false) => "list",
        ("GET" | "HEAD", true) if query.flag("watch") && sub.is_none() => "watch",
        ("GET" | "HEAD", true) => "get",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => {
            return Err(ApiError::new(
                Reason::MethodNotAllowed,
                format!("the server does not allow this method on the requested resource ({m})"),
            ));
        }
    })
}

/// Handles one HTTP request.
pub async fn handle(state: Arc<ApiState>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let reply = match serve(&state, req).await {
        Ok(r) => r,
        Err(e) => Reply::error(&e),
    };
    tracing::debug!(%method, %path, status = reply.status.as_u16(), micros = started.elapsed().as_micros() as u64, "api request");
    reply.into_response()
}

async fn serve(state: &Arc<ApiState>, req: Request<hyper::body::Incoming>) -> ApiResult<Reply> {
    let target = route(req.uri().path());
    if target == Ok(Target::Health) {
        return Ok(Reply::bytes(StatusCode::OK, Bytes::from_static(b"ok")).plain());
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !auth::token_matches(authorization, &state.token) {
        return Err(ApiError::unauthorized());
    }
    let target = target?;
    if target != Target::Faults {
        state.faults.before_request().await?;
    }
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, accept) = (header(header::CONTENT_TYPE), header(header::ACCEPT));
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(ApiError::new(
                Reason::RequestEntityTooLarge,
                "Request entity too large: limit is 3145728",
            ));
        }
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "reading the request body: {e}"
            )));
        }
    };
    let call = Call {
        method,
        query,
        content_type,
        accept,
        body,
    };
    let get_only = |value: Value| {
        if call.method == Method::GET || call.method == Method::HEAD {
            Ok(Reply::json(StatusCode::OK, &value))
        } else {
            Err(ApiError::new(
                Reason::MethodNotAllowed,
                "the server does not allow this method on the requested resource",
            ))
        }
    };
    match target {
        Target::Health => Ok(Reply::bytes(StatusCode::OK, Bytes::from_static(b"ok"))),
        Target::Version => get_only(discovery::version()),
        Target::Api => get_only(discovery::api_versions(&state.server_address)),
        Target::CoreV1 => get_only(discovery::core_v1()),
        Target::Apis => get_only(discovery::api_groups()),
        Target::AuthzGroup => get_only(discovery::authz_group_doc()),
        Target::AuthzV1 => get_only(discovery::authz_v1()),
        Target::CoordinationGroup => get_only(discovery::coordination_group_doc()),
        Target::CoordinationV1 => get_only(discovery::coordination_v1()),
        Target::OpenApiRoot => get_only(discovery::openapi_v3_root()),
        Target::OpenApiCore => get_only(discovery::openapi_v3_core()),
        Target::Ssar => self_subject_access_review(state, &call),
        Target::Faults => faults_admin(state, &call),
        Target::Resource {
            kind,
            namespace,
            name,
            sub,
        } => {
            let verb = verb_for(&call.method, name.is_some(), &call.query, sub.as_deref())?;
            state.authorizer.check(&Attributes {
                verb: verb.into(),
                group: kind.group().into(),
                resource: kind.resource().into(),
                subresource: sub.clone().unwrap_or_default(),
                namespace: if kind.namespaced() {
                    namespace.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                name: name.clone().unwrap_or_default(),
            })?;
            let ns = namespace.as_deref();
            match (verb, name.as_deref(), sub.as_deref()) {
                ("list", _, _) => watch::list(state, kind, ns, &call),
                ("watch", name, _) => watch::watch(state, kind, ns, name, &call),
                ("create", _, _) => objects::create(state, kind, ns, &call),
                ("get", Some(name), Some("log")) => {
                    pod_logs::get(state, ns.unwrap_or_default(), name, &call)
                }
                ("get", Some(name), _) => objects::get(state, kind, ns, name, &call),
                ("update", Some(name), sub) => objects::update(state, kind, ns, name, sub, &call),
                ("patch", Some(name), sub) => objects::patch(state, kind, ns, name, sub, &call),
                ("delete", Some(name), None) => objects::delete(state, kind, ns, name, &call),
                ("deletecollection", _, None) => objects::delete_collection(state, kind, ns, &call),
                _ => Err(ApiError::new(
                    Reason::MethodNotAllowed,
                    "the server does not allow this method on the requested resource",
                )),
            }
        }
    }
}

impl Reply {
    fn plain(mut self) -> Self {
        self.content_type = "text/plain; charset=utf-8";
        self
    }
}

fn self_subject_access_review(state: &ApiState, call: &Call) -> ApiResult<Reply> {
    if call.method != Method::POST {
        return Err(ApiError::new(
            Reason::MethodNotAllowed,
            "selfsubjectaccessreviews only support create",
        ));
    }
    let body = call
        .json_body()?
        .ok_or_else(|| ApiError::bad_request("a SelfSubjectAccessReview body is required"))?;
    let mut review: k8s_openapi::api::authorization::v1::SelfSubjectAccessReview =
        serde_path_to_error::deserialize(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "SelfSubjectAccessReview in version \"v1\" cannot be handled as a SelfSubjectAccessReview: {}: {}",
                e.path(),
                e.inner()
            ))
        })?;
    let status = match (
        &review.spec.resource_attributes,
        &review.spec.non_resource_attributes,
    ) {
        (Some(ra), None) => {
            let attrs = Attributes {
                verb: ra.verb.clone().unwrap_or_default(),
                group: ra.group.clone().unwrap_or_default(),
                resource: ra.resource.clone().unwrap_or_default(),
                subresource: ra.subresource.clone().unwrap_or_default(),
                namespace: ra.namespace.clone().unwrap_or_default(),
                name: ra.name.clone().unwrap_or_default(),
            };
            match state.authorizer.denied_by(&attrs) {
                None => k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus {
                    allowed: true,
                    reason: Some("allowed by kube-sim (no --deny rule matches)".into()),
                    ..Default::default()
                },
                Some(why) => k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus {
                    allowed: false,
                    denied: Some(true),
                    reason: Some(why),
                    ..Default::default()
                },
            }
        }
        (None, Some(_)) => k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus {
            allowed: true,
            ..Default::default()
        },
        _ => {
            return Err(ApiError::invalid(
                "SelfSubjectAccessReview",
                "selfsubjectaccessreviews",
                discovery::AUTHZ_GROUP,
                "",
                vec![super::status::Cause {
                    reason: "FieldValueRequired",
                    field: "spec.resourceAttributes".into(),
                    message: "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                }],
            ));
        }
    };
    review.status = Some(status);
    let mut value = serde_json::to_value(&review).map_err(|e| ApiError::internal(e.to_string()))?;
    value["apiVersion"] = "authorization.k8s.io/v1".into();
    value["kind"] = "SelfSubjectAccessReview".into();
    Ok(Reply::json(StatusCode::CREATED, &value))
}

fn faults_admin(state: &ApiState, call: &Call) -> ApiResult<Reply> {
    match call.method {
        Method::GET => {}
        Method::PUT => {
            let body = call
                .json_body()?
                .unwrap_or(Value::Object(Default::default()));
            let faults: Faults = serde_json::from_value(body)
                .map_err(|e| ApiError::bad_request(format!("invalid faults document: {e}")))?;
            state.faults.set(faults).map_err(ApiError::bad_request)?;
        }
        _ => {
            return Err(ApiError::new(
                Reason::MethodNotAllowed,
                "use GET or PUT on /sim/v1/faults",
            ));
        }
    }
    let value =
        serde_json::to_value(state.faults.get()).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Reply::json(StatusCode::OK, &value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_like_the_real_server() {
        let pods = route("/api/v1/namespaces/default/pods/web/log");
        assert_eq!(
            pods.ok(),
            Some(Target::Resource {
                kind: Kind::Pod,
                namespace: Some("default".into()),
                name: Some("web".into()),
                sub: Some("log".into())
            })
        );
        assert_eq!(
            route("/api/v1/pods").ok(),
            Some(Target::Resource {
                kind: Kind::Pod,
                namespace: None,
                name: None,
                sub: None
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/x").ok(),
            Some(Target::Resource {
                kind: Kind::Namespace,
                namespace: None,
                name: Some("x".into()),
                sub: None
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/default/services")
                .err()
                .map(|e| e.status_code()),
            Some(404)
        );
        assert_eq!(
            route("/api/v1/namespaces/default/configmaps/x/log")
                .err()
                .map(|e| e.status_code()),
            Some(404)
        );
        assert_eq!(
            route("/apis/apps/v1").err().map(|e| e.status_code()),
            Some(404)
        );
    }

    #[test]
    fn query_strings_are_decoded() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Cenv+in+(a)&watch=1&limit=5&x=%zz",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,env in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.int("limit").ok().flatten(), Some(5));
        assert_eq!(q.get("x"), Some("%zz"));
        assert!(Query::parse(Some("limit=abc")).int("limit").is_err());
    }
}
