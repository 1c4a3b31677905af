//! The certificate in use right now, shared between the manager that renews it and the TLS
//! stacks that present it: API client connections pick it at each handshake, the kubelet's
//! HTTPS server at each client hello.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use crate::CertificatePair;

/// A handle on the current pair; clones share it.
#[derive(Debug, Clone)]
pub struct CurrentCertificate {
    pair: Arc<watch::Sender<Option<Arc<CertificatePair>>>>,
}

impl CurrentCertificate {
    pub fn new(pair: Option<CertificatePair>) -> Self {
        CurrentCertificate {
            pair: Arc::new(watch::Sender::new(pair.map(Arc::new))),
        }
    }

    /// The pair in use, if one was issued or loaded.
    pub fn get(&self) -> Option<Arc<CertificatePair>> {
        self.pair.borrow().clone()
    }

    /// Puts `pair` in use; new handshakes present it from now on.
    pub fn set(&self, pair: CertificatePair) {
        self.pair.send_replace(Some(Arc::new(pair)));
    }

    /// Notified each time a new pair is put in use.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<CertificatePair>>> {
        self.pair.subscribe()
    }

    fn certified_key(&self) -> Option<Arc<CertifiedKey>> {
        self.pair.borrow().as_ref().map(|p| p.certified_key())
    }

    /// A rustls client certificate resolver presenting the current pair.
    pub fn client_resolver(&self) -> Arc<dyn ResolvesClientCert> {
        Arc::new(CurrentClientCert(self.clone()))
    }

    /// A rustls server certificate resolver presenting the current pair. Until there is one,
    /// handshakes fail (as upstream's GetCertificate answers "no serving certificate
    /// available for the kubelet").
    pub fn server_resolver(&self) -> Arc<dyn ResolvesServerCert> {
        Arc::new(CurrentServerCert(self.clone()))
    }
}

#[derive(Debug)]
struct CurrentClientCert(CurrentCertificate);

impl ResolvesClientCert for CurrentClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.certified_key()
    }

    fn has_certs(&self) -> bool {
        self.0.pair.borrow().is_some()
    }
}

#[derive(Debug)]
struct CurrentServerCert(CurrentCertificate);

impl ResolvesServerCert for CurrentServerCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = self.0.certified_key();
        if key.is_none() {
            tracing::warn!("no serving certificate available for the kubelet");
        }
        key
    }
}
