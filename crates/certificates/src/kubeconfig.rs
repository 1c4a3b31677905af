//! The kubeconfig files of the bootstrap: whether --kubeconfig still holds a valid client
//! certificate, and the one written after bootstrapping.

use std::path::Path;
use std::time::SystemTime;

use base64::Engine;
use kube::config::{AuthInfo, Cluster, Kubeconfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::CertificateError;
use crate::store::{read, write_private};

pub(crate) fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, CertificateError> {
    Kubeconfig::read_from(path).map_err(|source| CertificateError::Kubeconfig {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// The cluster and user of the kubeconfig's current context.
pub(crate) fn current(kubeconfig: &Kubeconfig) -> (Option<&Cluster>, Option<&AuthInfo>) {
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == kubeconfig.current_context.as_ref())
        .and_then(|c| c.context.as_ref());
    let Some(context) = context else {
        return (None, None);
    };
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref());
    let user = kubeconfig
        .auth_infos
        .iter()
        .find(|a| Some(&a.name) == context.user.as_ref())
        .and_then(|a| a.auth_info.as_ref());
    (cluster, user)
}

/// Whether the kubeconfig at `path` exists and its client certificates are unexpired; an
/// unreadable one or one without a client certificate is not valid.
pub(crate) fn is_client_config_still_valid(path: &Path) -> Result<bool, CertificateError> {
    match path.try_exists() {
        Ok(false) => return Ok(false),
        Err(source) => {
            return Err(CertificateError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(true) => {}
    }
    let invalid = |why: String| {
        tracing::warn!(path = %path.display(), "{why}");
        Ok(false)
    };
    let kubeconfig = match read_kubeconfig(path) {
        Ok(kubeconfig) => kubeconfig,
        Err(e) => {
            return invalid(format!(
                "unable to read existing bootstrap client config: {e}"
            ));
        }
    };
    let (_, user) = current(&kubeconfig);
    let cert_pem = match user {
        Some(AuthInfo {
            client_certificate_data: Some(data),
            ..
        }) => match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
            Ok(pem) => pem,
            Err(e) => return invalid(format!("unable to decode client-certificate-data: {e}")),
        },
        Some(AuthInfo {
            client_certificate: Some(file),
            ..
        }) => match read(Path::new(file)) {
            Ok(pem) => pem,
            Err(e) => return invalid(format!("unable to load TLS configuration: {e}")),
        },
        _ => return invalid("no client certificate in the existing kubeconfig".to_string()),
    };
    let certs = match CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => certs,
        Ok(_) => return invalid("unable to read TLS certificates".to_string()),
        Err(e) => return invalid(format!("unable to load TLS certificates: {e}")),
    };
    let now = SystemTime::now();
    for der in &certs {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return invalid("unable to parse TLS certificates".to_string());
        };
        let not_after = cert.validity().not_after;
        if now
            > SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(not_after.timestamp().max(0).unsigned_abs())
        {
            return invalid(format!(
                "part of the existing bootstrap client certificate is expired: {not_after}"
            ));
        }
    }
    Ok(true)
}

/// Writes --kubeconfig for the bootstrapped certificate: the bootstrap kubeconfig's cluster
/// (server, CA, insecure flag), the client certificate and key both from `pem_path`.
pub(crate) fn write_kubeconfig_from_bootstrapping(
    bootstrap: &Kubeconfig,
    kubeconfig_path: &Path,
    pem_path: &Path,
) -> Result<(), CertificateError> {
    let (cluster, _) = current(bootstrap);
    let mut cluster_yaml = serde_yaml_ng::Mapping::new();
    let mut put = |key: &str, value: serde_yaml_ng::Value| {
        cluster_yaml.insert(key.into(), value);
    };
    if let Some(cluster) = cluster {
        if let Some(server) = &cluster.server {
            put("server", server.as_str().into());
        }
        if cluster.insecure_skip_tls_verify == Some(true) {
            put("insecure-skip-tls-verify", true.into());
        }
        // A CA file is referred to, CA data is copied.
        if let Some(file) = &cluster.certificate_authority {
            put("certificate-authority", file.as_str().into());
        } else if let Some(data) = &cluster.certificate_authority_data {
            put("certificate-authority-data", data.as_str().into());
        }
        if let Some(name) = &cluster.tls_server_name {
            put("tls-server-name", name.as_str().into());
        }
    }
    let pem = pem_path.to_string_lossy().to_string();
    let mut user = serde_yaml_ng::Mapping::new();
    user.insert("client-certificate".into(), pem.as_str().into());
    user.insert("client-key".into(), pem.as_str().into());
    let text = serde_yaml_ng::to_string(&document(cluster_yaml, user)).map_err(|e| {
        CertificateError::WriteKubeconfig {
            path: kubeconfig_path.to_path_buf(),
            message: e.to_string(),
        }
    })?;
    if let Some(dir) = kubeconfig_path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| CertificateError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_private(kubeconfig_path, text.as_bytes())
}

/// The kubeconfig document, keys in clientcmd's order.
fn document(cluster: serde_yaml_ng::Mapping, user: serde_yaml_ng::Mapping) -> serde_yaml_ng::Value {
    use serde_yaml_ng::{Mapping, Value};
    let named = |name: &str, key: &str, value: Mapping| {
        let mut entry = Mapping::new();
        entry.insert(key.into(), Value::Mapping(value));
        entry.insert("name".into(), name.into());
        Value::Sequence(vec![Value::Mapping(entry)])
    };
    let mut context = Mapping::new();
    context.insert("cluster".into(), "default-cluster".into());
    context.insert("namespace".into(), "default".into());
    context.insert("user".into(), "default-auth".into());
    let mut root = Mapping::new();
    root.insert("apiVersion".into(), "v1".into());
    root.insert(
        "clusters".into(),
        named("default-cluster", "cluster", cluster),
    );
    root.insert(
        "contexts".into(),
        named("default-context", "context", context),
    );
    root.insert("current-context".into(), "default-context".into());
    root.insert("kind".into(), "Config".into());
    root.insert("preferences".into(), Value::Mapping(Mapping::new()));
    root.insert("users".into(), named("default-auth", "user", user));
    Value::Mapping(root)
}
