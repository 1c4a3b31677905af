//! TLS bootstrap (cmd/kubelet's LoadClientCert): turn the bootstrap credentials into a
//! client certificate of the node's own and a kubeconfig that uses it.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use kube::config::KubeConfigOptions;
use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use sha2::Digest;

use crate::csr::{
    self, CsrTemplate, KUBE_APISERVER_CLIENT_KUBELET_SIGNER, USAGE_CLIENT_AUTH,
    USAGE_DIGITAL_SIGNATURE,
};
use crate::kubeconfig::{
    is_client_config_still_valid, read_kubeconfig, write_kubeconfig_from_bootstrapping,
};
use crate::store::write_private;
use crate::{CertificateError, FileStore, client_builder};

/// The key of a request in flight, kept so that a restarted kubelet asks again with it.
const TMP_PRIVATE_KEY_FILE: &str = "kubelet-client.key.tmp";
/// How long the bootstrap waits for its certificate.
const BOOTSTRAP_CERTIFICATE_WAIT: Duration = Duration::from_secs(3600);
/// The usages of an ECDSA client certificate (key encipherment is for RSA keys only).
pub(crate) const CLIENT_USAGES: &[&str] = &[USAGE_DIGITAL_SIGNATURE, USAGE_CLIENT_AUTH];

/// When the kubeconfig at `kubeconfig_path` has no valid client certificate, requests one
/// for `node_name` with the credentials of `bootstrap_kubeconfig_path` (a
/// CertificateSigningRequest named node-csr-DIGEST for the signer
/// kubernetes.io/kube-apiserver-client-kubelet), stores it in `cert_dir` as
/// kubelet-client-DATE.pem behind the kubelet-client-current.pem symlink, and writes the
/// kubeconfig to use that file with the bootstrap kubeconfig's cluster.
pub async fn bootstrap(
    kubeconfig_path: &Path,
    bootstrap_kubeconfig_path: &Path,
    cert_dir: &Path,
    node_name: &str,
) -> Result<(), CertificateError> {
    if is_client_config_still_valid(kubeconfig_path)? {
        tracing::info!(path = %kubeconfig_path.display(), "Kubeconfig exists and is valid, skipping bootstrap");
        return Ok(());
    }
    tracing::info!(
        "Using bootstrap kubeconfig to generate TLS client cert, key and kubeconfig file"
    );
    let bootstrap = read_kubeconfig(bootstrap_kubeconfig_path)?;
    let config =
        kube::Config::from_custom_kubeconfig(bootstrap.clone(), &KubeConfigOptions::default())
            .await
            .map_err(|source| CertificateError::Kubeconfig {
                path: bootstrap_kubeconfig_path.to_path_buf(),
                source: Box::new(source),
            })?;
    let client = client_builder(config, None)
        .map_err(|e| CertificateError::Client(Box::new(e)))?
        .build();

    let store = FileStore::new("kubelet-client", cert_dir);
    let tmp_key_path = cert_dir.join(TMP_PRIVATE_KEY_FILE);
    let key = match store
        .current()
        .ok()
        .flatten()
        .and_then(|pair| key_of(pair.pem()))
    {
        Some(key) => key,
        None => {
            tracing::info!(
                "No valid private key and/or certificate found, reusing existing private key or creating a new one"
            );
            load_or_generate_key(&tmp_key_path)?
        }
    };

    let template = CsrTemplate::node(node_name);
    let request = template.request_pem(&key)?;
    let name = digested_name(&key.subject_public_key_info(), &template, CLIENT_USAGES);
    let (name, uid) = csr::request_certificate(
        &client,
        &request,
        Some(&name),
        KUBE_APISERVER_CLIENT_KUBELET_SIGNER,
        CLIENT_USAGES,
        &key,
    )
    .await?;
    tracing::info!(csr = %name, "Waiting for client certificate to be issued");
    let certificate =
        csr::wait_for_certificate(&client, &name, &uid, BOOTSTRAP_CERTIFICATE_WAIT).await?;
    store.update(&certificate, key.serialize_pem().as_bytes())?;
    if let Err(e) = std::fs::remove_file(&tmp_key_path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::info!(path = %tmp_key_path.display(), error = %e, "Failed cleaning up private key file");
    }
    write_kubeconfig_from_bootstrapping(&bootstrap, kubeconfig_path, &store.current_path())
}

/// The private key in `pem`, when rcgen can sign with it (PKCS#8).
pub(crate) fn key_of(pem: &[u8]) -> Option<KeyPair> {
    let der = PrivateKeyDer::from_pem_slice(pem).ok()?;
    KeyPair::try_from(&der).ok()
}

fn load_or_generate_key(path: &Path) -> Result<KeyPair, CertificateError> {
    if let Ok(pem) = std::fs::read(path) {
        if let Some(key) = key_of(&pem) {
            return Ok(key);
        }
        tracing::warn!(path = %path.display(), "unusable private key, generating a new one");
    }
    let key = csr::generate_key()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CertificateError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_private(path, key.serialize_pem().as_bytes())?;
    Ok(key)
}

/// node-csr- and a digest of what the request asks for (key, subject, usages), so that a
/// restarted bootstrap finds its earlier request instead of making another.
pub(crate) fn digested_name(
    public_key_der: &[u8],
    template: &CsrTemplate,
    usages: &[&str],
) -> String {
    let encode = |data: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
    let mut hash = sha2::Sha512_256::new();
    let mut write = |data: &[u8]| {
        hash.update(encode(data).as_bytes());
        // Not in the base64 URL alphabet: no two inputs write the same stream.
        hash.update(b"|");
    };
    write(public_key_der);
    write(template.common_name.as_bytes());
    for organization in &template.organizations {
        write(organization.as_bytes());
    }
    for usage in usages {
        write(usage.as_bytes());
    }
    format!("node-csr-{}", encode(&hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_digests_key_subject_and_usages() {
        let template = CsrTemplate::node("node-a");
        let name = digested_name(b"key", &template, CLIENT_USAGES);
        assert!(name.starts_with("node-csr-"));
        // SHA-512/256 is 32 bytes: 43 characters of unpadded base64.
        assert_eq!(name.len(), "node-csr-".len() + 43);
        assert_eq!(name, digested_name(b"key", &template, CLIENT_USAGES));
        assert_ne!(name, digested_name(b"other", &template, CLIENT_USAGES));
        assert_ne!(
            name,
            digested_name(b"key", &CsrTemplate::node("node-b"), CLIENT_USAGES)
        );
    }
}
