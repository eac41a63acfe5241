//! Decoding JSON into a typed object the way the Kubernetes API server does: a wrong
//! type names the field, and fields the type does not know are reported (the server
//! drops them, or refuses them under strict validation). Used wherever a user-supplied
//! object is checked: kube-sim's request bodies and control's templates.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A value that does not fit the type, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TypeError {
    /// e.g. `spec.containers[0].ports[0].containerPort`, or `<root>`.
    pub path: String,
    pub message: String,
}

/// Decodes `input` as `T`; returns it with its canonical JSON and the paths of unknown
/// (dropped) fields.
pub fn decode<T: DeserializeOwned + Serialize>(
    input: &Value,
) -> Result<(T, Value, Vec<String>), TypeError> {
    let typed: T = serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        TypeError {
            path: if path == "." { "<root>".into() } else { path },
            message: e.inner().to_string(),
        }
    })?;
    let canonical = serde_json::to_value(&typed).map_err(|e| TypeError {
        path: "<root>".into(),
        message: e.to_string(),
    })?;
    let mut unknown = Vec::new();
    collect_unknown(input, &canonical, "", &mut unknown);
    Ok((typed, canonical, unknown))
}

/// Every path present (and non-null) in `input` but absent from `canonical`.
fn collect_unknown(input: &Value, canonical: &Value, path: &str, out: &mut Vec<String>) {
    match (input, canonical) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(cv) => collect_unknown(v, cv, &child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, cv)) in a.iter().zip(b.iter()).enumerate() {
                collect_unknown(v, cv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize)]
    struct Inner {
        n: u16,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Outer {
        items: Vec<Inner>,
        #[serde(skip_serializing_if = "Option::is_none")]
        opt: Option<String>,
    }

    #[test]
    fn wrong_types_name_the_field_and_unknown_fields_are_listed() {
        let err = decode::<Outer>(&json!({"items": [{"n": 1}, {"n": "x"}]})).expect_err("type");
        assert_eq!(err.path, "items[1].n");
        let (_, _, unknown) =
            decode::<Outer>(&json!({"items": [{"n": 1, "m": 2}], "extra": true, "opt": null}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unknown, ["extra", "items[0].m"]);
    }
}
