//! Tool schemas as plain JSON Schema objects. schemars writes `true` for a free-form
//! `serde_json::Value` field ("anything"); JSON Schema allows that, but clients that
//! validate schemas object by object (the official TypeScript SDK among them) refuse the
//! whole `tools/list` over one such field. Every boolean subschema becomes its object
//! form: `true` → `{}`, `false` → `{"not": {}}`.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value};

/// Keywords whose value is one schema.
const ONE: &[&str] = &[
    "additionalProperties",
    "items",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
];
/// Keywords whose value is a list of schemas.
const LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to schemas.
const MAP: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Rewrites a tool's input and output schemas in place.
pub fn make_plain(tool: &mut Tool) {
    tool.input_schema = Arc::new(plain_object(&tool.input_schema));
    if let Some(out) = &tool.output_schema {
        tool.output_schema = Some(Arc::new(plain_object(out)));
    }
}

fn plain_object(schema: &JsonObject) -> JsonObject {
    let mut out = schema.clone();
    for (key, value) in out.iter_mut() {
        let k = key.as_str();
        if ONE.contains(&k) {
            plain(value);
        } else if LIST.contains(&k) {
            if let Value::Array(items) = value {
                items.iter_mut().for_each(plain);
            }
        } else if MAP.contains(&k)
            && let Value::Object(named) = value
        {
            named.values_mut().for_each(plain);
        }
    }
    out
}

/// One subschema: a boolean becomes its object form, an object is walked.
fn plain(schema: &mut Value) {
    match schema {
        Value::Bool(true) => *schema = Value::Object(Map::new()),
        Value::Bool(false) => {
            *schema = Value::Object(Map::from_iter([(
                "not".to_string(),
                Value::Object(Map::new()),
            )]))
        }
        Value::Object(map) => *map = plain_object(map),
        _ => {}
    }
}

/// Whether a schema holds a boolean subschema anywhere.
#[cfg(test)]
pub fn has_boolean_subschema(schema: &JsonObject) -> bool {
    fn walk(v: &Value, is_schema: bool) -> bool {
        match v {
            Value::Bool(_) => is_schema,
            Value::Object(map) => map.iter().any(|(k, v)| {
                let k = k.as_str();
                if ONE.contains(&k) {
                    walk(v, true)
                } else if LIST.contains(&k) {
                    v.as_array()
                        .is_some_and(|a| a.iter().any(|s| walk(s, true)))
                } else if MAP.contains(&k) {
                    v.as_object()
                        .is_some_and(|m| m.values().any(|s| walk(s, true)))
                } else {
                    false
                }
            }),
            _ => false,
        }
    }
    walk(&Value::Object(schema.clone()), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn boolean_subschemas_become_objects_everywhere() {
        let schema = json!({
            "type": "object",
            "properties": {
                "affinity": true,
                "containers": {"type": "array", "items": true},
                "never": false,
                "nested": {"anyOf": [true, {"type": "null"}], "additionalProperties": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "flag": {"type": "boolean", "default": true}
            },
            "$defs": {"Any": true},
            "required": ["containers"]
        });
        let Value::Object(obj) = schema else { panic!() };
        assert!(has_boolean_subschema(&obj));
        let out = plain_object(&obj);
        assert!(!has_boolean_subschema(&out));
        let out = Value::Object(out);
        assert_eq!(out["properties"]["affinity"], json!({}));
        assert_eq!(out["properties"]["containers"]["items"], json!({}));
        assert_eq!(out["properties"]["never"], json!({"not": {}}));
        assert_eq!(out["properties"]["nested"]["anyOf"][0], json!({}));
        assert_eq!(
            out["properties"]["flag"]["default"],
            json!(true),
            "values are not schemas"
        );
        assert_eq!(out["$defs"]["Any"], json!({}));
    }
}
