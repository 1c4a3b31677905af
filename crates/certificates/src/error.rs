//! The errors of certificate bootstrap, storage and rotation.
//! API errors are boxed: kube's are large and these travel through every fallible call.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("expected {path} to be a symlink but it is a file")]
    NotSymlink { path: PathBuf },
    #[error("invalid certificate/key pair: {0}")]
    InvalidPair(String),
    #[error("cannot generate a key or certificate request: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("unable to load kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    #[error("cannot write the kubeconfig {path}: {message}")]
    WriteKubeconfig { path: PathBuf, message: String },
    #[error("cannot build an API client: {0}")]
    Client(#[source] Box<kube::Error>),
    #[error("cannot create certificate signing request: {0}")]
    Create(#[source] Box<kube::Error>),
    #[error("cannot retrieve certificate signing request: {0}")]
    Get(#[source] Box<kube::Error>),
    #[error("retrieved csr is not compatible: {0}")]
    Incompatible(String),
    #[error("cannot watch on the certificate signing request: {0}")]
    Watch(#[source] Box<kube::Error>),
    #[error("certificate signing request is denied, reason: {reason}, message: {message}")]
    Denied { reason: String, message: String },
    #[error("certificate signing request failed, reason: {reason}, message: {message}")]
    Failed { reason: String, message: String },
    #[error("csr {0:?} was deleted")]
    Deleted(String),
    #[error("csr {0:?} changed UIDs")]
    ChangedUid(String),
    #[error("no certificate template yet: the node has no IP address")]
    NoTemplate,
    #[error("timed out waiting for the condition")]
    Timeout,
}
