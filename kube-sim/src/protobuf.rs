//! Request bodies in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl's typed commands (`create configmap`, `create namespace`,
//! `create serviceaccount`, `auth can-i`) send protobuf, so the simulator decodes the
//! kinds those commands create into the same JSON shape a JSON body would have. Other
//! kinds in protobuf get a 415 that says so (send JSON, as `kubectl create -f` does).
//! Field numbers are those of the upstream `generated.proto` files.

use serde_json::{Map, Value, json};

/// The 4-byte prefix of every protobuf-encoded Kubernetes object.
const MAGIC: &[u8] = b"k8s\x00";

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn next_field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.pos += 8;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or("truncated field")?;
                let bytes = &self.buf[self.pos..end];
                self.pos = end;
                Wire::Bytes(bytes)
            }
            5 => {
                self.pos += 4;
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        if self.pos > self.buf.len() {
            return Err("truncated field".into());
        }
        Ok(Some((key >> 3, wire)))
    }
}

fn text(b: &[u8]) -> Result<Value, String> {
    std::str::from_utf8(b)
        .map(|s| json!(s))
        .map_err(|_| "a string field is not UTF-8".to_string())
}

/// Visits each field of a message.
fn fields<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u64, Wire<'a>) -> Result<(), String>,
) -> Result<(), String> {
    let mut r = Reader::new(buf);
    while let Some((n, w)) = r.next_field()? {
        f(n, w)?;
    }
    Ok(())
}

/// A `map<string, string>` (or bytes, base64-encoded as in JSON) entry.
fn map_entry(buf: &[u8], binary: bool, into: &mut Map<String, Value>) -> Result<(), String> {
    let (mut key, mut value) = (String::new(), Value::String(String::new()));
    fields(buf, |n, w| {
        if let Wire::Bytes(b) = w {
            match n {
                1 => key = String::from_utf8(b.to_vec()).map_err(|_| "map key is not UTF-8")?,
                2 if binary => {
                    use base64::Engine;
                    value = json!(base64::engine::general_purpose::STANDARD.encode(b));
                }
                2 => value = text(b)?,
                _ => {}
            }
        }
        Ok(())
    })?;
    into.insert(key, value);
    Ok(())
}

fn time(buf: &[u8]) -> Result<Value, String> {
    let mut seconds = 0i64;
    fields(buf, |n, w| {
        if let (1, Wire::Varint(v)) = (n, w) {
            seconds = v as i64;
        }
        Ok(())
    })?;
    let ts = k8s_openapi::jiff::Timestamp::from_second(seconds).map_err(|e| e.to_string())?;
    Ok(json!(ts.to_string()))
}

fn object_meta(buf: &[u8]) -> Result<Value, String> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    fields(buf, |n, w| {
        match (n, w) {
            (1, Wire::Bytes(b)) => drop(m.insert("name".into(), text(b)?)),
            (2, Wire::Bytes(b)) => drop(m.insert("generateName".into(), text(b)?)),
            (3, Wire::Bytes(b)) => drop(m.insert("namespace".into(), text(b)?)),
            (5, Wire::Bytes(b)) => drop(m.insert("uid".into(), text(b)?)),
            (6, Wire::Bytes(b)) => drop(m.insert("resourceVersion".into(), text(b)?)),
            (8, Wire::Bytes(b)) => drop(m.insert("creationTimestamp".into(), time(b)?)),
            (11, Wire::Bytes(b)) => map_entry(b, false, &mut labels)?,
            (12, Wire::Bytes(b)) => map_entry(b, false, &mut annotations)?,
            (14, Wire::Bytes(b)) => finalizers.push(text(b)?),
            _ => {}
        }
        Ok(())
    })?;
    // Empty strings are how protobuf spells "unset".
    m.retain(|_, v| v.as_str() != Some(""));
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

fn config_map(raw: &[u8]) -> Result<Value, String> {
    let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap"});
    let (mut data, mut binary) = (Map::new(), Map::new());
    fields(raw, |n, w| {
        match (n, w) {
            (1, Wire::Bytes(b)) => v["metadata"] = object_meta(b)?,
            (2, Wire::Bytes(b)) => map_entry(b, false, &mut data)?,
            (3, Wire::Bytes(b)) => map_entry(b, true, &mut binary)?,
            (4, Wire::Varint(x)) => v["immutable"] = json!(x != 0),
            _ => {}
        }
        Ok(())
    })?;
    if !data.is_empty() {
        v["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        v["binaryData"] = Value::Object(binary);
    }
    Ok(v)
}

/// `Secret`: metadata 1, data 2 (bytes, base64 in JSON), type 3, stringData 4, immutable 5.
fn secret(raw: &[u8]) -> Result<Value, String> {
    let mut v = json!({"apiVersion": "v1", "kind": "Secret"});
    let (mut data, mut string_data) = (Map::new(), Map::new());
    fields(raw, |n, w| {
        match (n, w) {
            (1, Wire::Bytes(b)) => v["metadata"] = object_meta(b)?,
            (2, Wire::Bytes(b)) => map_entry(b, true, &mut data)?,
            (3, Wire::Bytes(b)) => v["type"] = text(b)?,
            (4, Wire::Bytes(b)) => map_entry(b, false, &mut string_data)?,
            (5, Wire::Varint(x)) => v["immutable"] = json!(x != 0),
            _ => {}
        }
        Ok(())
    })?;
    if !data.is_empty() {
        v["data"] = Value::Object(data);
    }
    if !string_data.is_empty() {
        v["stringData"] = Value::Object(string_data);
    }
    Ok(v)
}

fn namespace(raw: &[u8]) -> Result<Value, String> {
    let mut v = json!({"apiVersion": "v1", "kind": "Namespace"});
    fields(raw, |n, w| {
        if let (1, Wire::Bytes(b)) = (n, w) {
            v["metadata"] = object_meta(b)?;
        }
        Ok(())
    })?;
    Ok(v)
}

fn service_account(raw: &[u8]) -> Result<Value, String> {
    let mut v = json!({"apiVersion": "v1", "kind": "ServiceAccount"});
    fields(raw, |n, w| {
        match (n, w) {
            (1, Wire::Bytes(b)) => v["metadata"] = object_meta(b)?,
            (3, Wire::Varint(x)) => v["automountServiceAccountToken"] = json!(x != 0),
            _ => {}
        }
        Ok(())
    })?;
    Ok(v)
}

fn strings(buf: &[u8], names: &[(u64, &str)]) -> Result<Value, String> {
    let mut m = Map::new();
    fields(buf, |n, w| {
        if let (Some((_, name)), Wire::Bytes(b)) = (names.iter().find(|(i, _)| *i == n), w) {
            m.insert((*name).to_string(), text(b)?);
        }
        Ok(())
    })?;
    m.retain(|_, v| v.as_str() != Some(""));
    Ok(Value::Object(m))
}

fn self_subject_access_review(raw: &[u8]) -> Result<Value, String> {
    let mut v = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}});
    fields(raw, |n, w| {
        match (n, w) {
            (1, Wire::Bytes(b)) => v["metadata"] = object_meta(b)?,
            (2, Wire::Bytes(spec)) => fields(spec, |n, w| {
                match (n, w) {
                    (1, Wire::Bytes(b)) => {
                        v["spec"]["resourceAttributes"] = strings(
                            b,
                            &[
                                (1, "namespace"),
                                (2, "verb"),
                                (3, "group"),
                                (4, "version"),
                                (5, "resource"),
                                (6, "subresource"),
                                (7, "name"),
                            ],
                        )?
                    }
                    (2, Wire::Bytes(b)) => {
                        v["spec"]["nonResourceAttributes"] =
                            strings(b, &[(1, "path"), (2, "verb")])?
                    }
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(v)
}

/// Decodes a protobuf request body into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the k8s protobuf prefix")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    fields(envelope, |n, w| {
        match (n, w) {
            (1, Wire::Bytes(tm)) => fields(tm, |n, w| {
                if let Wire::Bytes(b) = w {
                    let s = String::from_utf8_lossy(b).into_owned();
                    match n {
                        1 => api_version = s,
                        2 => kind = s,
                        _ => {}
                    }
                }
                Ok(())
            })?,
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
        Ok(())
    })?;
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => config_map(raw),
        ("v1", "Namespace") => namespace(raw),
        ("v1", "Secret") => secret(raw),
        ("v1", "ServiceAccount") => service_account(raw),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => self_subject_access_review(raw),
        (v, k) => Err(format!(
            "kube-sim decodes protobuf only for ConfigMap, Namespace, Secret, ServiceAccount and SelfSubjectAccessReview (got {v}/{k}); send JSON"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = field(1, api_version.as_bytes());
        tm.extend(field(2, kind.as_bytes()));
        let mut body = MAGIC.to_vec();
        body.extend(field(1, &tm));
        body.extend(field(2, raw));
        body
    }

    #[test]
    fn a_config_map_decodes_to_its_json_form() {
        let mut meta = field(1, b"tpl");
        let mut label = field(1, b"app");
        label.extend(field(2, b"web"));
        meta.extend(field(11, &label));
        let mut raw = field(1, &meta);
        let mut entry = field(1, b"spec");
        entry.extend(field(2, b"{}"));
        raw.extend(field(2, &entry));
        raw.extend([4 << 3, 1]);
        let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tpl", "labels": {"app": "web"}}, "data": {"spec": "{}"}, "immutable": true})
        );
    }

    #[test]
    fn an_access_review_decodes() {
        let mut ra = field(1, b"team-a");
        ra.extend(field(2, b"delete"));
        ra.extend(field(5, b"pods"));
        let spec = field(1, &ra);
        let raw = field(2, &spec);
        let v = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &raw,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "team-a", "verb": "delete", "resource": "pods"})
        );
    }

    #[test]
    fn garbage_and_other_kinds_are_refused() {
        assert!(decode(b"nope").is_err());
        assert!(
            decode(&[b'k', b'8', b's', 0, 0x0a, 0x7f]).is_err(),
            "truncated"
        );
        let err = decode(&envelope("v1", "Pod", &[])).expect_err("pods");
        assert!(err.contains("send JSON"), "{err}");
    }
}
