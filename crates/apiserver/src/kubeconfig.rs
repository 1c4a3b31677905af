//! Kubeconfig files for a test cluster: one cluster, one user and one context, so kubectl and
//! kubelets under test can be pointed at any API server (this one or a real kube-apiserver).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// How the kubeconfig's user authenticates.
pub enum Credentials<'a> {
    /// None: plain HTTP, or anonymous.
    Anonymous,
    /// A client certificate and its key, both PEM.
    Certificate { cert_pem: &'a str, key_pem: &'a str },
    /// A bearer token.
    Token(&'a str),
}

/// Writes a kubeconfig for the server at `url`; with `ca_pem` the cluster trusts that CA.
pub fn write(
    path: &Path,
    url: &str,
    ca_pem: Option<&str>,
    credentials: Credentials<'_>,
) -> std::io::Result<()> {
    std::fs::write(path, text(url, ca_pem, credentials))
}

fn text(url: &str, ca_pem: Option<&str>, credentials: Credentials<'_>) -> String {
    let ca = ca_pem
        .map(|pem| format!("\n    certificate-authority-data: {}", STANDARD.encode(pem)))
        .unwrap_or_default();
    let user = match credentials {
        Credentials::Anonymous => "{}".to_string(),
        Credentials::Certificate { cert_pem, key_pem } => format!(
            "\n    client-certificate-data: {}\n    client-key-data: {}",
            STANDARD.encode(cert_pem),
            STANDARD.encode(key_pem)
        ),
        Credentials::Token(token) => format!("\n    token: {token}"),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}{ca}\n\
         users:\n- name: test\n  user: {user}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
         current-context: test\n"
    )
}
