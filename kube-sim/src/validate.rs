//! Decoding request bodies the way the real server does: into the typed k8s-openapi
//! object (so shapes are real), with unknown fields reported per `fieldValidation`, and
//! the name rules of `k8s.io/apimachinery/pkg/util/validation`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::status::{ApiError, Cause};

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    /// The server default since 1.27: unknown fields are dropped with a `Warning` header.
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation instance value \"{other}\" is invalid, must be one of \"Ignore\", \"Warn\", or \"Strict\""
            ))),
        }
    }
}

/// Decodes `input` as `T` and re-encodes it, returning the canonical JSON the store keeps
/// and the paths of fields `T` does not know (dropped, as the real server drops them).
pub fn decode_typed<T: DeserializeOwned + Serialize>(
    input: &Value,
    kind: &str,
    mode: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let (_, canonical, mut unknown) = shared::typed::decode::<T>(input).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {}: {}",
            e.path, e.message
        ))
    })?;
    if mode == FieldValidation::Ignore {
        unknown.clear();
    }
    if mode == FieldValidation::Strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    Ok((canonical, unknown))
}

pub use shared::k8s_names::{dns_label_problem, dns_subdomain_problem};

/// Validates `metadata.labels` and `metadata.annotations` keys/values like the real server.
pub fn validate_metadata_maps(meta: &Value, causes: &mut Vec<Cause>) {
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(why) = super::selectors::label_key_problem(k) {
                causes.push(Cause::invalid("metadata.labels", k, &why));
            }
            let value = v.as_str().unwrap_or_default();
            if let Some(why) = super::selectors::label_value_problem(value) {
                causes.push(Cause::invalid(format!("metadata.labels.{k}"), value, &why));
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0usize;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Some(why) = super::selectors::label_key_problem(k) {
                causes.push(Cause::invalid("metadata.annotations", k, &why));
            }
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: format!("Too long: may not be more than 262144 bytes (got {total})"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_at_every_depth() {
        let input = json!({
            "metadata": {"name": "p", "bogus": 1},
            "spec": {"containers": [{"name": "a", "image": "x", "imagee": "typo"}], "extra": {}}
        });
        let (canonical, unknown) = decode_typed::<Pod>(&input, "Pod", FieldValidation::Warn)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            unknown,
            vec!["metadata.bogus", "spec.containers[0].imagee", "spec.extra"]
        );
        assert!(canonical["spec"].get("extra").is_none());
        let err = decode_typed::<Pod>(&input, "Pod", FieldValidation::Strict).expect_err("strict");
        assert_eq!(err.status_code(), 400);
        assert!(
            err.message
                .contains("unknown field \"spec.containers[0].imagee\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let input = json!({"metadata": {"name": "p"}, "spec": {"containers": "nope"}});
        let err = decode_typed::<Pod>(&input, "Pod", FieldValidation::Warn).expect_err("type");
        assert_eq!(err.status_code(), 400);
        assert!(err.message.contains("spec.containers"), "{}", err.message);
    }

    #[test]
    fn name_rules_follow_rfc_1123() {
        assert!(dns_subdomain_problem("web-1.example").is_none());
        assert!(dns_subdomain_problem("Web").is_some());
        assert!(dns_subdomain_problem("-a").is_some());
        assert!(dns_subdomain_problem("a..b").is_some());
        assert!(dns_subdomain_problem(&"a".repeat(254)).is_some());
        assert!(dns_label_problem("ns-1").is_none());
        assert!(dns_label_problem("a.b").is_some());
        assert!(dns_label_problem(&"a".repeat(64)).is_some());
        assert!(FieldValidation::parse(Some("Loose")).is_err());
    }
}
