//! The errors of node registration, status and lease.
//! The API errors are boxed: kube's are large and these travel through every fallible call.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NodeStatusError {
    #[error("cannot load the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    #[error("cannot build an API client from the kubeconfig {path}: {source}")]
    Client {
        path: PathBuf,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    Machine(#[from] kubelet_host::HostError),
    #[error("cannot read {path}: {source}")]
    ReadHost {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot stat the filesystem of {path}: {source}")]
    StatFs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot {action} Node {node}: {source}")]
    Node {
        action: &'static str,
        node: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot {action} Lease {namespace}/{name}: {source}")]
    Lease {
        action: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}
