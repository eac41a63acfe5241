//! `create_pod_from_template`: a plain pod (not a workspace) from a template, with
//! overrides merged as the original merges them (`src/k8s/merge.ts`): top-level fields
//! replace, `labels`/`annotations` merge per key; container overrides apply by name,
//! `env` merged by name. Unlike the original, an override naming no container is an
//! error, and the result is validated, checked against Pod Security, and may not carry
//! the spawner's `nogoo9/` keys.

use serde_json::{Map, Value};

use crate::caller::Caller;
use crate::context::Context;
use crate::outcome::{Outcome, ToolError};
use crate::templates;

/// `env` lists merged by name: base order kept, override values win, new names appended.
fn merge_env(base: &[Value], overrides: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = base.to_vec();
    for o in overrides {
        let name = o.get("name");
        match out.iter_mut().find(|e| e.get("name") == name) {
            Some(slot) => *slot = o.clone(),
            None => out.push(o.clone()),
        }
    }
    out
}

/// Applies the overrides to a template spec (JSON), the original's way.
pub fn merge(
    mut spec: Map<String, Value>,
    top: Option<&Map<String, Value>>,
    containers: &[Map<String, Value>],
) -> Result<Map<String, Value>, ToolError> {
    for (k, v) in top.into_iter().flatten() {
        match (k.as_str(), spec.get_mut(k), v) {
            ("labels" | "annotations", Some(Value::Object(base)), Value::Object(o)) => {
                base.extend(o.clone())
            }
            _ => {
                spec.insert(k.clone(), v.clone());
            }
        }
    }
    let list = spec
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ToolError::bad_input("the template has no containers"))?;
    for o in containers {
        let name = o.get("name").and_then(Value::as_str).ok_or_else(|| {
            ToolError::bad_input("containerOverrides: every override needs a name")
        })?;
        let Some(Value::Object(c)) = list
            .iter_mut()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        else {
            return Err(ToolError::bad_input(format!(
                "containerOverrides: the template has no container named {name:?}"
            )));
        };
        for (k, v) in o {
            match k.as_str() {
                "name" => {}
                "env" => {
                    let base = c
                        .get("env")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let merged =
                        merge_env(&base, v.as_array().map(Vec::as_slice).unwrap_or_default());
                    c.insert("env".into(), Value::Array(merged));
                }
                _ => {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(spec)
}

/// `create_pod_from_template`: the template's spec with the overrides merged in.
pub async fn create(
    ctx: &Context,
    who: &Caller,
    template_ref: &str,
    namespace: Option<&str>,
    name: &str,
    top_level_overrides: Option<&Map<String, Value>>,
    container_overrides: &[Map<String, Value>],
) -> Result<Outcome, ToolError> {
    let ns = crate::policy::pod_namespace(ctx, who, namespace)?;
    let (cm, _) = crate::template_reads::fetch(ctx, who, template_ref).await?;
    let raw = cm
        .data
        .as_ref()
        .and_then(|d| d.get("spec"))
        .cloned()
        .unwrap_or_default();
    let Ok(Value::Object(spec)) = serde_json::from_str::<Value>(&raw) else {
        return Err(ToolError::bad_input(format!(
            "Template \"{template_ref}\" has no usable data.spec"
        )));
    };
    let merged = merge(spec, top_level_overrides, container_overrides)?;
    let parsed = templates::parse_spec(&Value::Object(merged))
        .map_err(|e| ToolError::bad_input(e.to_string()))?;
    crate::pod_writes::create_checked(
        ctx,
        who,
        &ns,
        name,
        parsed.labels,
        parsed.annotations,
        parsed.pod,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    #[test]
    fn overrides_merge_like_the_original() {
        let base = obj(json!({
            "labels": {"a": "1", "b": "2"},
            "restartPolicy": "Always",
            "containers": [{"name": "main", "image": "x:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}, {"name": "side", "image": "s"}]
        }));
        let top = obj(json!({"labels": {"b": "9", "c": "3"}, "restartPolicy": "Never"}));
        let over = vec![obj(
            json!({"name": "main", "image": "x:2", "env": [{"name": "B", "value": "override"}, {"name": "C", "value": "new"}]}),
        )];
        let m = merge(base, Some(&top), &over).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(m["labels"], json!({"a": "1", "b": "9", "c": "3"}));
        assert_eq!(m["restartPolicy"], "Never");
        assert_eq!(m["containers"][0]["image"], "x:2");
        assert_eq!(
            m["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "override"}, {"name": "C", "value": "new"}])
        );
        assert_eq!(m["containers"][1], json!({"name": "side", "image": "s"}));
        let err = merge(
            obj(json!({"containers": [{"name": "main", "image": "x"}]})),
            None,
            &[obj(json!({"name": "ghost", "image": "y"}))],
        )
        .expect_err("ghost");
        assert!(err.message.contains("no container named \"ghost\""));
    }
}
