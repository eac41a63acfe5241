//! `downwardAPI` volumes: files holding the pod's own metadata, written when the pod's
//! directory is made and rewritten when its labels or annotations change (as the real
//! kubelet does on the pod's next sync), each file replaced atomically (a reader sees the
//! old or the new content, never half).
//!
//! Supported `fieldRef.fieldPath`s: `metadata.name`, `metadata.namespace`, `metadata.uid`,
//! `metadata.labels`, `metadata.annotations` (`key="value"` lines, sorted, values
//! escaped as Go's `%q`), `metadata.labels['k']` and `metadata.annotations['k']` (the
//! raw value; empty when the key is missing). Other paths and `resourceFieldRef` items
//! write nothing.

use std::path::{Component, Path};

use serde_json::Value;

/// Writes every `downwardAPI` volume of `pod` under `pod_dir/volumes/<volume>/`.
pub(crate) fn refresh(pod_dir: &Path, pod: &Value) {
    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array);
    for v in volumes.into_iter().flatten() {
        let (Some(name), Some(items)) = (
            v.get("name").and_then(Value::as_str),
            v.pointer("/downwardAPI/items").and_then(Value::as_array),
        ) else {
            continue;
        };
        let dir = pod_dir.join("volumes").join(name);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(volume = name, error = %e, "cannot create a downwardAPI volume");
            continue;
        }
        for item in items {
            let (Some(path), Some(field)) = (
                item.get("path").and_then(Value::as_str),
                item.pointer("/fieldRef/fieldPath").and_then(Value::as_str),
            ) else {
                continue;
            };
            // The API server refuses absolute paths and `..`; never write outside.
            let rel = Path::new(path);
            if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                continue;
            }
            if let Some(content) = field_value(pod, field) {
                write_atomically(&dir.join(rel), &content);
            }
        }
    }
}

/// Whether `old` → `new` changed what a downwardAPI volume can show.
pub(crate) fn metadata_changed(old: &Value, new: &Value) -> bool {
    ["/metadata/labels", "/metadata/annotations"]
        .iter()
        .any(|p| old.pointer(p) != new.pointer(p))
}

fn field_value(pod: &Value, field: &str) -> Option<String> {
    let meta = pod.get("metadata")?;
    let string = |k: &str| {
        meta.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match field {
        "metadata.name" => Some(string("name")),
        "metadata.namespace" => Some(string("namespace")),
        "metadata.uid" => Some(string("uid")),
        "metadata.labels" => Some(lines(meta.get("labels"))),
        "metadata.annotations" => Some(lines(meta.get("annotations"))),
        _ => {
            let (map, key) = field
                .strip_prefix("metadata.labels['")
                .map(|k| ("labels", k))
                .or_else(|| {
                    field
                        .strip_prefix("metadata.annotations['")
                        .map(|k| ("annotations", k))
                })?;
            let key = key.strip_suffix("']")?;
            Some(
                meta.get(map)
                    .and_then(|m| m.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    }
}

/// `key="value"` lines, sorted by key (the kubelet's format for a whole map).
fn lines(map: Option<&Value>) -> String {
    let mut out: Vec<String> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            // JSON string escaping matches Go's %q for the text labels and annotations hold.
            let quoted = serde_json::to_string(v.as_str().unwrap_or_default()).unwrap_or_default();
            format!("{k}={quoted}")
        })
        .collect();
    out.sort();
    out.join("\n")
}

fn write_atomically(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!("..{name}.tmp"));
    let done = std::fs::write(&tmp, content).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        tracing::warn!(path = %path.display(), error = %e, "cannot write a downwardAPI file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_follow_the_metadata_and_stay_inside_the_volume() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut pod = json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                         "labels": {"b": "2", "a": "1"}, "annotations": {"ctx": "{\"K\":\"v\"}"}},
            "spec": {"volumes": [{"name": "info", "downwardAPI": {"items": [
                {"path": "ctx.json", "fieldRef": {"fieldPath": "metadata.annotations['ctx']"}},
                {"path": "sub/labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "missing", "fieldRef": {"fieldPath": "metadata.labels['nope']"}},
                {"path": "../escape", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "/abs", "fieldRef": {"fieldPath": "metadata.name"}}
            ]}}]}
        });
        refresh(dir.path(), &pod);
        let read = |p: &str| std::fs::read_to_string(dir.path().join("volumes/info").join(p)).ok();
        assert_eq!(read("ctx.json").as_deref(), Some("{\"K\":\"v\"}"));
        assert_eq!(read("sub/labels").as_deref(), Some("a=\"1\"\nb=\"2\""));
        assert_eq!(read("name").as_deref(), Some("p"));
        assert_eq!(read("missing").as_deref(), Some(""));
        assert!(!dir.path().join("volumes/escape").exists());
        let before = pod.clone();
        pod["metadata"]["annotations"]["ctx"] = json!("{\"K\":\"w\"}");
        assert!(metadata_changed(&before, &pod));
        refresh(dir.path(), &pod);
        assert_eq!(read("ctx.json").as_deref(), Some("{\"K\":\"w\"}"));
        assert!(!metadata_changed(&pod, &pod));
    }
}
