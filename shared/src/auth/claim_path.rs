//! `AUTH_SUB_JSONPATH`: where the identity is in the token's claims. The original used
//! full JSONPath; identities live at plain member paths, so we accept that subset
//! (`$.a.b`, `$['a.b']`, `$["x"]`, `$.roles[0]`) and refuse the rest at startup rather
//! than guess at filters and wildcards.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Member(String),
    Index(usize),
}

/// A parsed claim path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    text: String,
    steps: Vec<Step>,
}

impl ClaimPath {
    /// Parses `AUTH_SUB_JSONPATH`.
    pub fn parse(text: &str) -> Result<ClaimPath, String> {
        Self::parse_setting(text, "AUTH_SUB_JSONPATH")
    }

    /// Parses a path given by the setting `setting` (named in errors).
    pub fn parse_setting(text: &str, setting: &str) -> Result<ClaimPath, String> {
        let bad = |why: &str| format!("{setting} {text:?}: {why}");
        let rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| bad("must start with `$`"))?;
        let mut steps = Vec::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    let mut name = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        name.push(c);
                        chars.next();
                    }
                    if name.is_empty() || name == "*" {
                        return Err(bad("expected a member name after `.`"));
                    }
                    steps.push(Step::Member(name));
                }
                '[' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    let quote = chars.peek().copied().filter(|q| *q == '\'' || *q == '"');
                    if let Some(q) = quote {
                        chars.next();
                        for c in chars.by_ref() {
                            if c == q {
                                closed = true;
                                break;
                            }
                            inner.push(c);
                        }
                        if !closed || chars.next() != Some(']') {
                            return Err(bad("unterminated quoted member"));
                        }
                        steps.push(Step::Member(inner));
                    } else {
                        for c in chars.by_ref() {
                            if c == ']' {
                                closed = true;
                                break;
                            }
                            inner.push(c);
                        }
                        let index = inner.trim().parse::<usize>().ok().filter(|_| closed);
                        match index {
                            Some(i) => steps.push(Step::Index(i)),
                            None => {
                                return Err(bad(
                                    "only member names and array indexes are supported",
                                ));
                            }
                        }
                    }
                }
                _ => return Err(bad("expected `.` or `[`")),
            }
        }
        if steps.is_empty() {
            return Err(bad("names no claim"));
        }
        Ok(ClaimPath {
            text: text.trim().to_string(),
            steps,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The claim at this path, if the token has it.
    pub fn value<'a>(&self, claims: &'a Value) -> Option<&'a Value> {
        let mut v = claims;
        for step in &self.steps {
            v = match step {
                Step::Member(name) => v.get(name.as_str()),
                Step::Index(i) => v.get(*i),
            }?;
        }
        Some(v)
    }

    /// Whether the claim at this path is `wanted`, or a list containing it (exact,
    /// case-sensitive string comparison; nothing else matches).
    pub fn holds(&self, claims: &Value, wanted: &str) -> bool {
        match self.value(claims) {
            Some(Value::String(s)) => s == wanted,
            Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(wanted)),
            _ => false,
        }
    }

    /// The identity at this path: a string, or a number written as one.
    pub fn identity(&self, claims: &Value) -> Result<String, String> {
        let v = self
            .value(claims)
            .ok_or_else(|| format!("claim {} not found", self.text))?;
        match v {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(format!(
                "claim {} must be a non-empty string or a number",
                self.text
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn member_paths_find_the_identity() {
        let claims = json!({"sub": "alice", "ext": {"user.id": 42, "names": ["a", "b"]}});
        let cases = [
            ("$.sub", "alice"),
            ("$['sub']", "alice"),
            ("$.ext['user.id']", "42"),
            ("$[\"ext\"].names[1]", "b"),
        ];
        for (path, want) in cases {
            let p = ClaimPath::parse(path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.identity(&claims).as_deref(), Ok(want), "{path}");
        }
    }

    #[test]
    fn unsupported_or_broken_paths_are_refused_with_the_reason() {
        for (path, why) in [
            ("sub", "start with `$`"),
            ("$", "names no claim"),
            ("$.", "member name"),
            ("$.*", "member name"),
            ("$[?(@.a)]", "only member names"),
            ("$['sub", "unterminated"),
            ("$sub", "expected `.`"),
        ] {
            let err = ClaimPath::parse(path).expect_err(path);
            assert!(err.contains(why), "{path}: {err}");
        }
    }

    #[test]
    fn a_role_claim_holds_a_string_or_a_list_containing_it() {
        let groups = ClaimPath::parse_setting("$.groups", "AUTH_ADMIN_JSONPATH").expect("path");
        assert!(groups.holds(&json!({"groups": "admins"}), "admins"));
        assert!(groups.holds(&json!({"groups": ["dev", "admins"]}), "admins"));
        for no in [
            json!({"groups": ["Admins"]}),
            json!({"groups": "admins,dev"}),
            json!({"groups": [["admins"]]}),
            json!({"groups": {"admins": true}}),
            json!({}),
        ] {
            assert!(!groups.holds(&no, "admins"), "{no}");
        }
        let err = ClaimPath::parse_setting("groups", "AUTH_ADMIN_JSONPATH").expect_err("no $");
        assert!(err.starts_with("AUTH_ADMIN_JSONPATH"), "{err}");
    }

    #[test]
    fn identity_must_be_a_string_or_number() {
        let p = ClaimPath::parse("$.sub").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.identity(&json!({})).unwrap_err().contains("not found"));
        assert!(p.identity(&json!({"sub": ""})).is_err());
        assert!(p.identity(&json!({"sub": {"x": 1}})).is_err());
        assert!(p.identity(&json!({"sub": true})).is_err());
    }
}
