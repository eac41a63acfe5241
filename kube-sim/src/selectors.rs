//! `labelSelector` and `fieldSelector` parsing and matching, with the grammar and the
//! error wording of the real API server (`k8s.io/apimachinery/pkg/labels`).

use std::collections::BTreeMap;

use super::status::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        let mut rest = input.trim();
        while !rest.is_empty() {
            let (req, remaining) = parse_requirement(rest).map_err(|why| {
                ApiError::bad_request(format!(
                    "unable to parse requirement: {why} (in labelSelector {input:?})"
                ))
            })?;
            requirements.push(req);
            rest = remaining.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
                if rest.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "unable to parse requirement: found '', expected: identifier (in labelSelector {input:?})"
                    )));
                }
            } else if !rest.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: found '{rest}', expected: ',' (in labelSelector {input:?})"
                )));
            }
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => labels.get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => labels.get(k) != Some(v),
            LabelRequirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelRequirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn take_while(s: &str, f: impl Fn(char) -> bool) -> (&str, &str) {
    let end = s.find(|c: char| !f(c)).unwrap_or(s.len());
    s.split_at(end)
}

fn parse_requirement(s: &str) -> Result<(LabelRequirement, &str), String> {
    if let Some(after) = s.strip_prefix('!') {
        let (key, rest) = take_while(after.trim_start(), is_key_char);
        validate_key(key)?;
        return Ok((LabelRequirement::DoesNotExist(key.to_string()), rest));
    }
    let (key, rest) = take_while(s, is_key_char);
    validate_key(key)?;
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with(',') {
        return Ok((LabelRequirement::Exists(key.to_string()), rest));
    }
    for (op, is_eq) in [("==", true), ("!=", false), ("=", true)] {
        if let Some(after) = rest.strip_prefix(op) {
            let (value, remaining) = take_while(after.trim_start(), is_key_char);
            validate_value(value)?;
            let req = if is_eq {
                LabelRequirement::Equals(key.to_string(), value.to_string())
            } else {
                LabelRequirement::NotEquals(key.to_string(), value.to_string())
            };
            return Ok((req, remaining));
        }
    }
    let (word, after) = take_while(rest, |c| c.is_ascii_alphabetic());
    let negated = match word {
        "in" => false,
        "notin" => true,
        "" => {
            return Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                first(rest)
            ));
        }
        other => {
            return Err(format!(
                "found '{other}', expected: in, notin, =, ==, !=, gt, lt"
            ));
        }
    };
    let after = after.trim_start();
    let Some(inner) = after.strip_prefix('(') else {
        return Err(format!("found '{}', expected: '('", first(after)));
    };
    let Some(close) = inner.find(')') else {
        return Err("found '', expected: ')'".to_string());
    };
    let mut values = Vec::new();
    for v in inner[..close].split(',') {
        let v = v.trim();
        validate_value(v)?;
        values.push(v.to_string());
    }
    if values.iter().all(String::is_empty) {
        return Err("for 'in', 'notin' operators, values set can't be empty".to_string());
    }
    let req = if negated {
        LabelRequirement::NotIn(key.to_string(), values)
    } else {
        LabelRequirement::In(key.to_string(), values)
    };
    Ok((req, &inner[close + 1..]))
}

fn first(s: &str) -> &str {
    s.char_indices().nth(1).map(|(i, _)| &s[..i]).unwrap_or(s)
}

fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("found '', expected: identifier".to_string());
    }
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || shared::k8s_names::dns_subdomain_problem(p).is_some())
    {
        return Err(format!(
            "invalid label key \"{key}\": prefix part must be a DNS-1123 subdomain"
        ));
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Label values may be empty; otherwise they follow the qualified-name rule.
pub fn label_value_problem(v: &str) -> Option<String> {
    if v.is_empty() || is_qualified_name_part(v) {
        None
    } else {
        Some(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (max 63 characters)".to_string(),
        )
    }
}

/// Label keys: an optional DNS subdomain prefix and a qualified name.
pub fn label_key_problem(k: &str) -> Option<String> {
    validate_key(k).err()
}

fn validate_value(v: &str) -> Result<(), String> {
    match label_value_problem(v) {
        None => Ok(()),
        Some(why) => Err(format!("invalid label value: \"{v}\": {why}")),
    }
}

/// The fields a field selector can name, read from a stored object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectableFields {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    pub node_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
    Phase,
    NodeName,
}

/// A parsed field selector: a conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(Field, bool, String)>,
}

impl FieldSelector {
    /// `pod_fields` says whether `status.phase` and `spec.nodeName` are selectable (pods
    /// only; `status.phase` also for namespaces), as on the real server.
    pub fn parse(input: &str, kind_label: &str, pod_fields: bool) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for raw in input.split(',') {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = raw.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = raw.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = raw.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{raw}'; can't understand '{raw}'"
                )));
            };
            let field = match field.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                "status.phase" if pod_fields || kind_label == "Namespace" => Field::Phase,
                "spec.nodeName" if pod_fields => Field::NodeName,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {other}"
                    )));
                }
            };
            terms.push((field, equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The name this selector pins (`metadata.name=x`), used by kube-rs for single-object watches.
    pub fn exact_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, eq, _)| *f == Field::Name && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, fields: &SelectableFields) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = match field {
                Field::Name => &fields.name,
                Field::Namespace => &fields.namespace,
                Field::Phase => &fields.phase,
                Field::NodeName => &fields.node_name,
            };
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(selector: &str, pairs: &[(&str, &str)], expected: bool) {
        let sel = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(
            sel.matches(&labels(pairs)),
            expected,
            "{selector} on {pairs:?}"
        );
    }

    #[test]
    fn every_operator_matches_like_the_real_server() {
        check("", &[], true);
        check("app=web", &[("app", "web")], true);
        check("app==web", &[("app", "web")], true);
        check("app = web", &[("app", "api")], false);
        check("app!=web", &[], true);
        check("app!=web", &[("app", "web")], false);
        check("env in (prod, staging)", &[("env", "staging")], true);
        check("env in (prod)", &[], false);
        check("env notin (prod)", &[], true);
        check("env notin (prod,dev)", &[("env", "dev")], false);
        check("nogoo9/workspace-id", &[("nogoo9/workspace-id", "a")], true);
        check(
            "!nogoo9/workspace-id",
            &[("nogoo9/workspace-id", "a")],
            false,
        );
        check("!gone,app=web", &[("app", "web")], true);
        check("a=1,b in (x,y),!c", &[("a", "1"), ("b", "y")], true);
        check("a=", &[("a", "")], true);
    }

    #[test]
    fn malformed_selectors_are_rejected_with_a_reason() {
        for bad in [
            "app=web,",
            "app in prod",
            "app in (prod",
            "=x",
            "app ~ x",
            "a b",
            "app=-x",
            "in ()",
        ] {
            let err = LabelSelector::parse(bad).expect_err(bad);
            assert_eq!(err.status_code(), 400, "{bad}");
            assert!(
                err.message.contains("unable to parse requirement"),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn field_selectors_cover_the_supported_fields_only() {
        let f = SelectableFields {
            name: "p".into(),
            namespace: "default".into(),
            phase: "Running".into(),
            node_name: "kube-sim".into(),
        };
        let sel = FieldSelector::parse("status.phase=Running,spec.nodeName==kube-sim", "Pod", true)
            .unwrap_or_default();
        assert!(sel.matches(&f));
        let sel = FieldSelector::parse("metadata.name!=p", "Pod", true).unwrap_or_default();
        assert!(!sel.matches(&f));
        assert_eq!(
            FieldSelector::parse("metadata.name=p", "Pod", true)
                .unwrap_or_default()
                .exact_name(),
            Some("p")
        );
        let err = FieldSelector::parse("spec.nodeName=x", "ConfigMap", false).expect_err("cm");
        assert_eq!(err.message, "field label not supported: spec.nodeName");
        let err = FieldSelector::parse("metadata.name", "Pod", true).expect_err("no op");
        assert_eq!(err.status_code(), 400);
    }
}
