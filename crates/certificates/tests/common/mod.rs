//! A test CA that plays the CSR signer against the test API server.
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kubelet_certificates::{CertificatePair, CsrTemplate, CurrentCertificate};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tokio::task::JoinHandle;

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "test-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Signs a PEM CSR, valid from now for `lifetime`, with a fresh random serial.
    pub fn sign(&self, request_pem: &str, lifetime: Duration) -> String {
        let mut csr = CertificateSigningRequestParams::from_pem(request_pem).expect("a CSR");
        let now = time::OffsetDateTime::now_utc();
        csr.params.not_before = now - Duration::from_secs(1);
        csr.params.not_after = now + lifetime;
        csr.params.serial_number = Some(fastrand::u64(1..).to_be_bytes().to_vec().into());
        csr.signed_by(&self.issuer).expect("signed").pem()
    }

    /// A fresh key and a certificate for `template`, valid for `lifetime`: (cert, key) PEM.
    pub fn issue(&self, template: &CsrTemplate, lifetime: Duration) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let request = template.request_pem(&key).expect("CSR");
        (self.sign(&request, lifetime), key.serialize_pem())
    }

    /// A root store trusting this CA.
    pub fn client_roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der.clone().into()).expect("CA added");
        roots
    }
}

/// A TLS server on 127.0.0.1 that requires a client certificate from `ca` and answers every
/// request with the serial of the certificate the client presented.
pub async fn spawn_whoami_server(ca: &TestCa) -> (std::net::SocketAddr, JoinHandle<()>) {
    let (cert, key) = ca.issue(
        &CsrTemplate {
            common_name: "whoami".into(),
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
            ..CsrTemplate::default()
        },
        Duration::from_secs(3600),
    );
    let pair = CertificatePair::from_pem(cert.as_bytes(), key.as_bytes()).expect("pair");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(ca.client_roots()),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("verifier");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_client_cert_verifier(verifier)
    .with_cert_resolver(CurrentCertificate::new(Some(pair)).server_resolver());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let serial = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
                    .map(|(_, cert)| cert.raw_serial_as_string())
                    .unwrap_or_default();
                let service = hyper::service::service_fn(move |_request| {
                    let serial = serial.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(serial)),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, task)
}

#[derive(Clone)]
pub enum Verdict {
    Approve(Duration),
    Deny { reason: String, message: String },
}

/// Answers every CertificateSigningRequest without conditions; returns the requests seen.
pub fn spawn_signer(
    client: kube::Client,
    ca: Arc<TestCa>,
    verdict: Verdict,
) -> (JoinHandle<()>, Arc<Mutex<Vec<CertificateSigningRequest>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let api: Api<CertificateSigningRequest> = Api::all(client);
        loop {
            let list = api.list(&ListParams::default()).await.expect("list CSRs");
            for csr in list.items {
                let answered = csr
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| !c.is_empty());
                if answered {
                    continue;
                }
                let name = csr.metadata.name.clone().expect("named");
                let status = match &verdict {
                    Verdict::Approve(lifetime) => {
                        let request = String::from_utf8(csr.spec.request.0.clone()).expect("PEM");
                        let certificate = ca.sign(&request, *lifetime);
                        serde_json::json!({
                            "conditions": [{"type": "Approved", "status": "True",
                                "reason": "AutoApproved", "message": "approved by the test signer"}],
                            "certificate": base64::engine::general_purpose::STANDARD.encode(certificate),
                        })
                    }
                    Verdict::Deny { reason, message } => serde_json::json!({
                        "conditions": [{"type": "Denied", "status": "True",
                            "reason": reason, "message": message}],
                    }),
                };
                record.lock().unwrap().push(csr);
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({ "status": status })),
                )
                .await
                .expect("status written");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (task, seen)
}

/// The bootstrap token of the tests' bootstrap kubeconfigs.
pub const BOOTSTRAP_TOKEN: &str = "07401b.f395accd246ae52d";

/// A bootstrap kubeconfig with a bearer token for `server`, trusting `ca_pem` when given.
pub fn write_bootstrap_kubeconfig(path: &std::path::Path, server: &str, ca_pem: Option<&str>) {
    let ca = ca_pem
        .map(|pem| {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: bootstrap\n  cluster:\n    server: {server}{ca}\n\
         users:\n- name: kubelet-bootstrap\n  user:\n    token: {BOOTSTRAP_TOKEN}\n\
         contexts:\n- name: bootstrap\n  context:\n    cluster: bootstrap\n    user: kubelet-bootstrap\n\
         current-context: bootstrap\n"
    );
    std::fs::write(path, text).expect("bootstrap kubeconfig");
}
