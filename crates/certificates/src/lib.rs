//! The kubelet's certificates (upstream pkg/kubelet/certificate and client-go's
//! util/certificate).
//!
//! 1. [`bootstrap`] (--bootstrap-kubeconfig): when --kubeconfig has no valid client
//!    certificate, request one with the bootstrap credentials and write --kubeconfig to use
//!    CERT_DIR/kubelet-client-current.pem.
//! 2. [`CertificateManager::client`] (rotateCertificates) keeps that certificate renewed;
//!    [`client_builder`] with its [`CurrentCertificate`] builds an API client that always
//!    presents the current one.
//! 3. [`CertificateManager::serving`] (serverTLSBootstrap) obtains and renews the serving
//!    certificate; [`CurrentCertificate::server_resolver`] hands it to the HTTPS server.

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
