//! Kubernetes object names, checked the way the API server checks them (RFC 1123), with
//! its own wording: control checks every name before it calls the API (so no name can
//! turn a GET into a LIST), and kube-sim refuses what the real server refuses.

/// RFC 1123 subdomain (names of pods, config maps, service accounts).
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok { None } else { Some(MSG.into()) }
}

/// RFC 1123 label (namespace names, container names, port names…).
pub fn dns_label_problem(name: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { None } else { Some(MSG.into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        assert!(dns_subdomain_problem("web-1.example").is_none());
        for bad in ["Web", "-a", "a..b", "", "?", "a/b", "a b"] {
            assert!(dns_subdomain_problem(bad).is_some(), "{bad:?}");
        }
        assert!(dns_subdomain_problem(&"a".repeat(254)).is_some());
        assert!(dns_label_problem("ns-1").is_none());
        for bad in ["a.b", "", "-x", "x-", "X"] {
            assert!(dns_label_problem(bad).is_some(), "{bad:?}");
        }
        assert!(dns_label_problem(&"a".repeat(64)).is_some());
    }
}
