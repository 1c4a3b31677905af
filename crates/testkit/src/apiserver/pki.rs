//! The files a kube-apiserver needs for TLS and service accounts, made by the test cluster's CA
//! (the test API server's, reused).

use std::path::{Path, PathBuf};

use kubelet_test_apiserver::ca::{CaError, TestCa};

/// Paths of the certificates and keys given to kube-apiserver.
pub struct Pki {
    pub ca: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_public_key: PathBuf,
    pub kubelet_client_cert: PathBuf,
    pub kubelet_client_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("cannot generate the service account key: {0}")]
    Key(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Pki {
    /// Writes everything under `dir`.
    pub fn write(ca: &TestCa, dir: &Path) -> Result<Self, PkiError> {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| PkiError::Write {
                path: path.clone(),
                source,
            })?;
            Ok::<_, PkiError>(path)
        };
        let serving = ca.issue_serving_cert()?;
        // As kubeadm's apiserver-kubelet-client: what the kubelet sees on logs, exec and proxy.
        let kubelet_client = ca.issue_client_cert(
            "kube-apiserver-kubelet-client",
            &["system:masters".to_string()],
        )?;
        let service_account = rcgen::KeyPair::generate()?;
        Ok(Pki {
            ca: write("ca.crt", ca.pem())?,
            serving_cert: write("apiserver.crt", &serving.cert_pem)?,
            serving_key: write("apiserver.key", &serving.key_pem)?,
            service_account_key: write("sa.key", &service_account.serialize_pem())?,
            service_account_public_key: write("sa.pub", &service_account.public_key_pem())?,
            kubelet_client_cert: write("apiserver-kubelet-client.crt", &kubelet_client.cert_pem)?,
            kubelet_client_key: write("apiserver-kubelet-client.key", &kubelet_client.key_pem)?,
        })
    }
}
