//! Kubernetes `Status` error bodies: every error the simulated API server returns is an
//! [`ApiError`], rendered exactly as the real server renders `metav1.Status`.

use serde_json::{Value, json};

/// The `reason` of a failed `Status`, with the HTTP code the real server pairs it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    AlreadyExists,
    Conflict,
    Expired,
    Gone,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    Invalid,
    TooManyRequests,
    InternalError,
    ServiceUnavailable,
    Timeout,
}

impl Reason {
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Expired | Reason::Gone => 410,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
            Reason::Timeout => 504,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::Gone => "Gone",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Timeout => "Timeout",
        }
    }
}

/// One entry of `details.causes`, as the real server reports validation failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`.
    pub reason: &'static str,
    /// The field path, e.g. `spec.containers[0].name`.
    pub field: String,
    pub message: String,
}

/// A failed request: rendered as a `Status` object with the matching HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    /// `details.name`, `details.kind` (plural resource) and `details.group`.
    pub details: Option<Box<Details>>,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub name: String,
    pub group: String,
    pub kind: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason.as_str())
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    pub fn with_details(mut self, resource: &str, group: &str, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_string(),
            group: group.to_string(),
            kind: resource.to_string(),
        }));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    /// `pods "x" not found`, the real server's wording.
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        Self::new(
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified(resource, group)),
        )
        .with_details(resource, group, name)
    }

    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        Self::new(
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(resource, group)),
        )
        .with_details(resource, group, name)
    }

    /// A stale `resourceVersion` on update, with the real server's wording.
    pub fn conflict(resource: &str, group: &str, name: &str, why: &str) -> Self {
        Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(resource, group)
            ),
        )
        .with_details(resource, group, name)
    }

    /// A 422 `Invalid` with one cause per failed field, worded like the real server:
    /// `Pod "x" is invalid: spec.containers[0].name: Required value`.
    pub fn invalid(
        kind: &str,
        resource: &str,
        group: &str,
        name: &str,
        causes: Vec<Cause>,
    ) -> Self {
        let joined: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let list = if joined.len() == 1 {
            joined[0].clone()
        } else {
            format!("[{}]", joined.join(", "))
        };
        let mut err = Self::new(
            Reason::Invalid,
            format!("{kind} \"{name}\" is invalid: {list}"),
        )
        .with_details(resource, group, name);
        // The real server puts the Kind (not the plural) in details.kind for Invalid.
        if let Some(d) = err.details.as_mut() {
            d.kind = kind.to_string();
        }
        err.causes = causes;
        err
    }

    /// 410 Gone with reason Expired: a resume point older than the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(Reason::Expired, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(Reason::Unauthorized, "Unauthorized")
    }

    pub fn too_many_requests(retry_after: u32) -> Self {
        let mut err = Self::new(
            Reason::TooManyRequests,
            "the server has received too many requests and has asked us to try again later",
        );
        err.retry_after_seconds = Some(retry_after);
        err
    }

    pub fn status_code(&self) -> u16 {
        self.reason.code()
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.status_code(),
        });
        let mut details = serde_json::Map::new();
        if let Some(d) = &self.details {
            details.insert("name".into(), json!(d.name));
            if !d.group.is_empty() {
                details.insert("group".into(), json!(d.group));
            }
            details.insert("kind".into(), json!(d.kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// `pods` for the core group, `selfsubjectaccessreviews.authorization.k8s.io` otherwise.
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A `Status` object for a successful delete that removed the object at once.
pub fn success_status(resource: &str, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "kind": resource, "uid": uid},
    })
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &str, why: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: \"{value}\": {why}"),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: \"{value}\""),
        }
    }

    pub fn unsupported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: \"{value}\": supported values: {}",
                list.join(", ")
            ),
        }
    }

    pub fn forbidden(field: impl Into<String>, why: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {}", why.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_the_real_wording_and_shape() {
        let s = ApiError::not_found("pods", "", "web").to_status();
        assert_eq!(s["message"], "pods \"web\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "pods");
        assert!(s["details"].get("group").is_none());
    }

    #[test]
    fn invalid_lists_every_cause_and_names_the_field() {
        let e = ApiError::invalid(
            "Pod",
            "pods",
            "",
            "x",
            vec![
                Cause::required("spec.containers[0].image"),
                Cause::duplicate("spec.containers[1].name", "a"),
            ],
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["kind"], "Pod");
        assert_eq!(
            s["details"]["causes"][0]["field"],
            "spec.containers[0].image"
        );
        assert!(
            s["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Pod \"x\" is invalid: [")
        );
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let s = ApiError::too_many_requests(2).to_status();
        assert_eq!(s["code"], 429);
        assert_eq!(s["details"]["retryAfterSeconds"], 2);
    }
}
