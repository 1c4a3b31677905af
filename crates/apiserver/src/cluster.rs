//! What the API server holds besides its objects: its CA, its authenticators and the log of
//! the requests it answered. Shared by every listener and handler of one server.

use std::sync::Arc;

use crate::audit::RequestLog;
use crate::auth::Authenticator;
use crate::ca::{CaError, TestCa};
use crate::csr::CsrSettings;
use crate::reviews::Authorizer;

/// Settings of a server, fixed at start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub tls: bool,
    pub allow_anonymous: bool,
    pub csr: CsrSettings,
}

/// The server-wide services every handler reaches through [`crate::server::AppState`].
pub struct Cluster {
    pub ca: TestCa,
    pub auth: Authenticator,
    pub requests: RequestLog,
    pub csr: CsrSettings,
    pub authorizer: Authorizer,
    /// How the proxy reaches kubelets: as kube-apiserver-kubelet-client, any serving cert.
    pub kubelet_tls: Arc<rustls::ClientConfig>,
}

impl Cluster {
    pub fn new(options: &ClusterOptions) -> Result<Self, CaError> {
        let ca = TestCa::generate()?;
        Ok(Cluster {
            kubelet_tls: crate::proxy::kubelet_client_config(&ca)?,
            ca,
            auth: Authenticator::new(options.tls, options.allow_anonymous),
            requests: RequestLog::default(),
            csr: options.csr.clone(),
            authorizer: Authorizer::default(),
        })
    }
}
