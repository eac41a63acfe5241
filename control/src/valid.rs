//! Kubernetes names from tool arguments, checked before any API call (RFC 1123, the API
//! server's own rules and words): an unchecked name such as `?` or `a/b` can turn a GET
//! of one object into a LIST of every object, or reach another resource.

use crate::outcome::ToolError;

/// An object name (pods, templates, service accounts): a DNS subdomain.
pub fn object(name: &str, what: &str) -> Result<(), ToolError> {
    match shared::k8s_names::dns_subdomain_problem(name) {
        None => Ok(()),
        Some(why) => Err(ToolError::bad_input(format!("{what} name {name:?}: {why}"))),
    }
}

/// A container name: a DNS label.
pub fn container(name: &str) -> Result<(), ToolError> {
    match shared::k8s_names::dns_label_problem(name) {
        None => Ok(()),
        Some(why) => Err(ToolError::bad_input(format!(
            "container name {name:?}: {why}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_change_the_request_are_refused() {
        for bad in ["?", "", "a/b", "..", "A", "x?watch=1", "%2F"] {
            let e = object(bad, "pod").expect_err(bad);
            assert_eq!(e.code, 400);
            assert!(e.message.starts_with("pod name"), "{}", e.message);
        }
        assert!(object("ws-alice-demo", "pod").is_ok());
        assert!(container("agent").is_ok());
        assert!(container("a.b").is_err());
    }
}
