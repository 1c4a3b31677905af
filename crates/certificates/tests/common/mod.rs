//! A test CA that plays the CSR signer against the test API server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tokio::task::JoinHandle;

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
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
        TestCa {
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

/// A bootstrap kubeconfig with a bearer token for `server`.
pub fn write_bootstrap_kubeconfig(path: &std::path::Path, server: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: bootstrap\n  cluster:\n    server: {server}\n\
         users:\n- name: kubelet-bootstrap\n  user:\n    token: {BOOTSTRAP_TOKEN}\n\
         contexts:\n- name: bootstrap\n  context:\n    cluster: bootstrap\n    user: kubelet-bootstrap\n\
         current-context: bootstrap\n"
    );
    std::fs::write(path, text).expect("bootstrap kubeconfig");
}
