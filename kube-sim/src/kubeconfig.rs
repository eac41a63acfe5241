//! The kubeconfig the simulator writes: one cluster, one user (bearer token), one context.

use base64::Engine;

/// Renders a kubeconfig (YAML; strings are JSON-quoted, which YAML accepts).
pub fn render(server_url: &str, token: &str, ca_pem: Option<&str>, namespace: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                q(&base64::engine::general_purpose::STANDARD.encode(pem))
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {server}\n{ca}contexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim-user\n    namespace: {ns}\ncurrent-context: kube-sim\nusers:\n- name: kube-sim-user\n  user:\n    token: {token}\npreferences: {{}}\n",
        server = q(server_url),
        ns = q(namespace),
        token = q(token),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_rs_reads_what_we_write() {
        let text = render(
            "https://127.0.0.1:6443",
            "t0k\"en",
            Some("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"),
            "default",
        );
        let kc =
            kube::config::Kubeconfig::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(kc.current_context.as_deref(), Some("kube-sim"));
        let cluster = kc.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.clone());
        assert_eq!(cluster.as_deref(), Some("https://127.0.0.1:6443"));
        assert!(
            kc.clusters[0]
                .cluster
                .as_ref()
                .and_then(|c| c.certificate_authority_data.clone())
                .is_some()
        );
    }
}
