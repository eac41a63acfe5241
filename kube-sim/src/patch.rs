//! The three patch content types the product and kubectl use: JSON patch (RFC 6902),
//! JSON merge patch (RFC 7396) and strategic merge patch (merge keys of the core/v1 types).
//!
//! Strategic merge supports merge keys, `$patch: replace|delete|merge`,
//! `$deleteFromPrimitiveList/<field>`, `$retainKeys` and ignores `$setElementOrder/<field>`
//! (ordering hints). Server-side apply (`application/apply-patch+yaml`) is not simulated.

use serde_json::{Map, Value};

use super::status::{ApiError, ApiResult, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (server-side apply, {base}, is not simulated by kube-sim)"
                ),
            )),
            other => Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
                ),
            )),
        }
    }
}

/// Applies `patch` (raw body) to `target`.
pub fn apply(target: &Value, patch_body: &[u8], ptype: PatchType) -> ApiResult<Value> {
    let patch: Value = serde_json::from_slice(patch_body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    match ptype {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch).map_err(|e| {
                ApiError::bad_request(format!("the server rejected our request due to an error in our request: invalid JSON patch: {e}"))
            })?;
            let mut doc = target.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    Reason::Invalid,
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(doc)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a merge patch must be a JSON object",
                ));
            }
            let mut doc = target.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        PatchType::Strategic => {
            let Value::Object(p) = patch else {
                return Err(ApiError::bad_request(
                    "error decoding patch: a strategic merge patch must be a JSON object",
                ));
            };
            let Value::Object(t) = target.clone() else {
                return Err(ApiError::internal("patch target is not an object"));
            };
            Ok(Value::Object(merge_map(t, p, "")?))
        }
    }
}

/// The merge key of a list at `path` (dot-joined field names, list indices dropped), or
/// `None` for atomic lists (replaced whole) — the `patchMergeKey` tags of core/v1.
fn merge_key(path: &str) -> Option<&'static str> {
    let last = path.rsplit('.').next().unwrap_or(path);
    match (path, last) {
        (_, "containers" | "initContainers" | "ephemeralContainers") => Some("name"),
        (_, "volumes" | "imagePullSecrets" | "env" | "resourceClaims") => Some("name"),
        (_, "volumeMounts") => Some("mountPath"),
        (_, "volumeDevices") => Some("devicePath"),
        (_, "hostAliases") => Some("ip"),
        (_, "ports") if path.contains("ontainers") => Some("containerPort"),
        (_, "conditions") => Some("type"),
        (_, "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses") => {
            Some("name")
        }
        (_, "ownerReferences") => Some("uid"),
        (_, "readinessGates") => Some("conditionType"),
        (_, "topologySpreadConstraints") => Some("topologyKey"),
        (_, "podIPs" | "hostIPs") => Some("ip"),
        _ => None,
    }
}

/// Lists of scalars merged as sets (`patchStrategy:"merge"` on primitive lists).
fn is_primitive_merge_list(path: &str) -> bool {
    path == "metadata.finalizers"
}

fn merge_map(
    mut target: Map<String, Value>,
    patch: Map<String, Value>,
    path: &str,
) -> ApiResult<Map<String, Value>> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut p = patch;
            p.remove("$patch");
            return Ok(strip_directives(p));
        }
        Some("delete") => return Ok(Map::new()),
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?} in map at {path:?}"
            )));
        }
    }
    let retain: Option<Vec<String>> =
        patch
            .get("$retainKeys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
    for (key, pv) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<Value> = pv.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|v| !remove.contains(v));
            }
            continue;
        }
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if pv.is_null() {
            target.remove(&key);
            continue;
        }
        let merged = match (target.remove(&key), pv) {
            (Some(Value::Object(t)), Value::Object(p)) => Value::Object(merge_map(t, p, &child)?),
            (Some(Value::Array(t)), Value::Array(p)) => Value::Array(merge_list(t, p, &child)?),
            (_, Value::Object(p)) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    continue;
                }
                Value::Object(strip_directives(p))
            }
            (_, Value::Array(p)) => Value::Array(merge_list(Vec::new(), p, &child)?),
            (_, p) => p,
        };
        target.insert(key, merged);
    }
    if let Some(keep) = retain {
        target.retain(|k, _| keep.contains(k));
    }
    Ok(target)
}

fn merge_list(target: Vec<Value>, patch: Vec<Value>, path: &str) -> ApiResult<Vec<Value>> {
    // `[{"$patch": "replace"}, ...]` replaces the whole list.
    if patch
        .iter()
        .any(|v| v.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .into_iter()
            .filter(|v| v.get("$patch").is_none())
            .map(strip_value)
            .collect());
    }
    if is_primitive_merge_list(path) {
        let mut out = target;
        for v in patch {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        return Ok(out);
    }
    let Some(key) = merge_key(path) else {
        return Ok(patch.into_iter().map(strip_value).collect());
    };
    let mut out = target;
    for item in patch {
        let Value::Object(item) = item else {
            return Err(ApiError::bad_request(format!(
                "unable to find api field in struct for the list at {path:?}: elements must be objects with merge key {key:?}"
            )));
        };
        let Some(id) = item.get(key).cloned() else {
            return Err(ApiError::bad_request(format!(
                "map: {item:?} does not contain declared merge key: {key}"
            )));
        };
        let pos = out.iter().position(|t| t.get(key) == Some(&id));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                out.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => {
                let Value::Object(existing) = std::mem::take(&mut out[i]) else {
                    out[i] = Value::Object(strip_directives(item));
                    continue;
                };
                out[i] = Value::Object(merge_map(existing, item, path)?);
            }
            None => out.push(Value::Object(strip_directives(item))),
        }
    }
    Ok(out)
}

fn strip_value(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        other => other,
    }
}

/// Removes `$`-directives from a subtree that is inserted as is.
fn strip_directives(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| {
            let v = match v {
                Value::Object(m) => Value::Object(strip_directives(m)),
                Value::Array(items) => Value::Array(items.into_iter().map(strip_value).collect()),
                other => other,
            };
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {
                "containers": [
                    {"name": "main", "image": "node:20", "env": [{"name": "A", "value": "1"}]},
                    {"name": "side", "image": "busybox"}
                ],
                "tolerations": [{"key": "t"}]
            }
        })
    }

    fn smp(patch: Value) -> Value {
        apply(&pod(), patch.to_string().as_bytes(), PatchType::Strategic)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn strategic_merge_uses_merge_keys() {
        let out = smp(
            json!({"spec": {"containers": [{"name": "main", "image": "node:22", "env": [{"name": "B", "value": "2"}]}]}}),
        );
        assert_eq!(out["spec"]["containers"][0]["image"], "node:22");
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(out["spec"]["containers"][1]["name"], "side");
    }

    #[test]
    fn strategic_merge_directives() {
        let out = smp(json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}));
        assert_eq!(out["spec"]["containers"].as_array().map(Vec::len), Some(1));
        let out = smp(json!({"metadata": {"labels": {"a": null, "c": "3"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        let out = smp(json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"z": "9"}));
        let out = smp(json!({"metadata": {"finalizers": ["y"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        let out = smp(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        // Atomic lists are replaced.
        let out = smp(
            json!({"spec": {"tolerations": [{"key": "u"}], "$setElementOrder/containers": [{"name": "side"}]}}),
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "u"}]));
    }

    #[test]
    fn merge_and_json_patches() {
        let out = apply(
            &pod(),
            br#"{"spec":{"containers":[{"name":"only","image":"x"}]}}"#,
            PatchType::Merge,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out["spec"]["containers"].as_array().map(Vec::len), Some(1));
        let out = apply(
            &pod(),
            br#"[{"op":"replace","path":"/metadata/labels/a","value":"9"}]"#,
            PatchType::Json,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out["metadata"]["labels"]["a"], "9");
    }

    #[test]
    fn bad_patches_are_rejected() {
        assert_eq!(
            apply(&pod(), b"{not json", PatchType::Merge)
                .map_err(|e| e.status_code())
                .err(),
            Some(400)
        );
        assert_eq!(
            apply(&pod(), br#"{"op":"x"}"#, PatchType::Json)
                .map_err(|e| e.status_code())
                .err(),
            Some(400)
        );
        let err = apply(
            &pod(),
            br#"[{"op":"test","path":"/metadata/name","value":"q"}]"#,
            PatchType::Json,
        )
        .expect_err("test op");
        assert_eq!(err.status_code(), 422);
        let err = apply(
            &pod(),
            br#"{"spec":{"containers":[{"image":"x"}]}}"#,
            PatchType::Strategic,
        )
        .expect_err("no key");
        assert!(err.message.contains("merge key"), "{}", err.message);
        assert!(PatchType::from_content_type("application/apply-patch+yaml").is_err());
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").ok(),
            Some(PatchType::Merge)
        );
    }
}
