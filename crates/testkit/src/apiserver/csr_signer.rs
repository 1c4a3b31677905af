//! What kube-controller-manager does for CSRs, which a bare kube-apiserver does not: approve
//! pending requests (with kubectl, as an administrator would) and sign approved ones with the
//! cluster CA, writing status.certificate through the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kubelet_test_apiserver::DEFAULT_CSR_SIGNING_DURATION;
use kubelet_test_apiserver::ca::TestCa;
use serde_json::Value;

use crate::kubectl::Kubectl;

const POLL: Duration = Duration::from_millis(300);

/// Approves and signs every CSR until dropped.
pub struct CsrSigner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CsrSigner {
    pub fn start(ca: Arc<TestCa>, kubectl: Kubectl) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Err(e) = pass(&ca, &kubectl) {
                    eprintln!("test CSR signer: {e}");
                }
                std::thread::sleep(POLL);
            }
        });
        CsrSigner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CsrSigner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One look at the CSRs: approves the pending, signs the approved without a certificate.
fn pass(ca: &TestCa, kubectl: &Kubectl) -> Result<(), String> {
    let list: Value = serde_json::from_str(&kubectl.run(&["get", "csr", "-o", "json"])?)
        .map_err(|e| format!("kubectl get csr: {e}"))?;
    for csr in list["items"].as_array().into_iter().flatten() {
        if csr["status"]["certificate"].is_string() {
            continue;
        }
        let name = csr["metadata"]["name"].as_str().unwrap_or_default();
        let has = |kind: &str| {
            csr["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == kind))
        };
        if has("Denied") || has("Failed") {
            continue;
        }
        if !has("Approved") {
            kubectl.run(&["certificate", "approve", name])?;
            continue;
        }
        let mut signed = csr.clone();
        signed["status"]["certificate"] = STANDARD.encode(sign(ca, csr)?).into();
        kubectl.run_stdin(
            &[
                "replace",
                "--raw",
                &format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/status"),
                "-f",
                "-",
            ],
            Some(&signed.to_string()),
        )?;
    }
    Ok(())
}

/// The certificate for a CSR: its request, usages and expirationSeconds, as upstream's signer.
fn sign(ca: &TestCa, csr: &Value) -> Result<String, String> {
    let spec = &csr["spec"];
    let request = STANDARD
        .decode(spec["request"].as_str().unwrap_or_default())
        .map_err(|e| format!("spec.request: {e}"))?;
    let usages: Vec<String> = spec["usages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect();
    let validity = spec["expirationSeconds"]
        .as_u64()
        .map(Duration::from_secs)
        .map_or(DEFAULT_CSR_SIGNING_DURATION, |d| {
            d.min(DEFAULT_CSR_SIGNING_DURATION)
        });
    ca.sign_request(&request, &usages, validity)
        .map_err(|e| e.to_string())
}
