//! The kubelet's certificates (upstream pkg/kubelet/certificate, cmd/kubelet's bootstrap and
//! client-go's util/certificate).
//!
//! Wiring, in the order the kubelet starts:
//! 1. With --bootstrap-kubeconfig: [`bootstrap`]`(kubeconfig, bootstrap_kubeconfig, cert_dir,
//!    node_name)` before building any client. When --kubeconfig has no valid client
//!    certificate it asks for one (CSR node-csr-DIGEST, signer
//!    kubernetes.io/kube-apiserver-client-kubelet, ECDSA P-256), stores it as
//!    CERT_DIR/kubelet-client-DATE.pem behind kubelet-client-current.pem and writes
//!    --kubeconfig to use that file.
//! 2. With rotateCertificates: [`CertificateManager::client`]`(cert_dir, node_name,
//!    kubeconfig)`, then the API client from [`client_builder`] (or nodestatus'
//!    `client_from_kubeconfig_with_certificate`) with its [`CertificateManager::current`],
//!    then spawn [`CertificateManager::run`] with that client. The client presents whatever
//!    certificate is current; every connection is closed when it changes, as client-go does.
//! 3. With serverTLSBootstrap: [`CertificateManager::serving`]`(cert_dir, node_name,
//!    tls_files, addresses)` where `addresses` returns the node's status addresses; give
//!    [`CurrentCertificate::server_resolver`] to the HTTPS server and spawn
//!    [`CertificateManager::run`] with the kubelet's API client.
//!
//! Until the first serving certificate is issued (the node needs an IP address first, as
//! upstream without the AllowDNSOnlyNodeCSR gate), the server listens but every TLS handshake
//! fails: upstream's GetCertificate answers "no serving certificate available for the
//! kubelet" the same way; --tls-cert-file/--tls-private-key-file, when given, serve until
//! then.

mod bootstrap;
mod client;
pub mod csr;
mod current;
mod error;
mod kubeconfig;
mod manager;
mod pair;
mod store;

pub use bootstrap::bootstrap;
pub use client::{ApiService, client_builder};
pub use csr::CsrTemplate;
pub use current::CurrentCertificate;
pub use error::CertificateError;
pub use manager::{CertificateManager, next_rotation_deadline};
pub use pair::{CertificatePair, Leaf};
pub use store::FileStore;
