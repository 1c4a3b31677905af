//! The certificate manager of client-go's util/certificate: keeps a certificate issued
//! through CertificateSigningRequests and renews it at a jittered point of its lifetime.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::NodeAddress;

use crate::bootstrap::CLIENT_USAGES;
use crate::csr::{
    self, CsrTemplate, KUBE_APISERVER_CLIENT_KUBELET_SIGNER, KUBELET_SERVING_SIGNER,
    USAGE_DIGITAL_SIGNATURE, USAGE_SERVER_AUTH,
};
use crate::kubeconfig::{current, read_kubeconfig};
use crate::{CertificateError, CertificatePair, CurrentCertificate, FileStore};

/// How long one request waits for its certificate.
const CERTIFICATE_WAIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The usages of an ECDSA serving certificate (key encipherment is for RSA keys only).
const SERVING_USAGES: &[&str] = &[USAGE_DIGITAL_SIGNATURE, USAGE_SERVER_AUTH];

type TemplateFn = Arc<dyn Fn() -> Option<CsrTemplate> + Send + Sync>;

/// When to renew a certificate valid from `not_before` to `not_after`: at 70% to 90% of its
/// lifetime, `jitter` (in [0, 1)) choosing where (client-go's jitteryDuration:
/// wait.Jitter(total, 0.2) - 0.3 * total).
pub fn next_rotation_deadline(
    not_before: SystemTime,
    not_after: SystemTime,
    jitter: f64,
) -> SystemTime {
    let total = not_after.duration_since(not_before).unwrap_or_default();
    not_before + total.mul_f64(0.7 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// Obtains and renews one certificate; [`current`](Self::current) hands it out.
pub struct CertificateManager {
    /// The signer, which also names the manager in logs.
    signer_name: &'static str,
    usages: &'static [&'static str],
    template: TemplateFn,
    store: FileStore,
    current: CurrentCertificate,
    /// Renew at once (a bootstrap certificate taken from the kubeconfig).
    force_rotation: bool,
}

impl CertificateManager {
    /// The client certificate manager (rotateCertificates): CERT_DIR/kubelet-client-*.pem,
    /// signer kubernetes.io/kube-apiserver-client-kubelet. When the store is empty the
    /// client certificate of `kubeconfig_path` is stored and renewed at once.
    pub fn client(
        cert_dir: &Path,
        node_name: &str,
        kubeconfig_path: &Path,
    ) -> Result<Self, CertificateError> {
        let store = FileStore::new("kubelet-client", cert_dir);
        let (pair, force_rotation) = match store.current()? {
            Some(pair) => (Some(pair), false),
            None => match kubeconfig_pair(kubeconfig_path)? {
                Some(pair) => (Some(store.update(pair.pem(), pair.pem())?), true),
                None => (None, false),
            },
        };
        let template = CsrTemplate::node(node_name);
        Ok(CertificateManager {
            signer_name: KUBE_APISERVER_CLIENT_KUBELET_SIGNER,
            usages: CLIENT_USAGES,
            template: Arc::new(move || Some(template.clone())),
            store,
            current: CurrentCertificate::new(pair),
            force_rotation,
        })
    }

    /// The serving certificate manager (serverTLSBootstrap): CERT_DIR/kubelet-server-*.pem,
    /// signer kubernetes.io/kubelet-serving, names from the node's addresses (hostnames and
    /// DNS names, IPs); nothing is requested before the node has an IP address.
    /// `tls_files` (--tls-cert-file, --tls-private-key-file) serve until the first issue.
    pub fn serving(
        cert_dir: &Path,
        node_name: &str,
        tls_files: Option<(&Path, &Path)>,
        addresses: impl Fn() -> Vec<NodeAddress> + Send + Sync + 'static,
    ) -> Result<Self, CertificateError> {
        let mut store = FileStore::new("kubelet-server", cert_dir);
        if let Some((cert, key)) = tls_files {
            store = store.with_fallback(cert, key);
        }
        let pair = store.current()?;
        let node = CsrTemplate::node(node_name);
        Ok(CertificateManager {
            signer_name: KUBELET_SERVING_SIGNER,
            usages: SERVING_USAGES,
            template: Arc::new(move || serving_template(&node, &addresses())),
            store,
            current: CurrentCertificate::new(pair),
            force_rotation: false,
        })
    }

    /// The certificate in use, for API clients or the HTTPS server.
    pub fn current(&self) -> CurrentCertificate {
        self.current.clone()
    }

    /// Renews the certificate for as long as the task runs, asking through `client`.
    pub async fn run(mut self, client: kube::Client) {
        loop {
            self.wait_for_rotation().await;
            if (self.template)().is_none() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // client-go's backoff: 2 s doubling, five tries, then every 32 s until it works.
            let mut delay = Duration::from_secs(2);
            let mut tries = 0;
            while !self.rotate(&client).await {
                tries += 1;
                let wait = if tries < 5 {
                    let wait = delay.mul_f64(1.0 + 0.1 * fastrand::f64());
                    delay *= 2;
                    wait
                } else {
                    if tries == 5 {
                        tracing::error!(
                            signer = self.signer_name,
                            "Reached backoff limit, still unable to rotate certs"
                        );
                    }
                    Duration::from_secs(32)
                };
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Sleeps until the rotation deadline, or until the template asks for other names.
    async fn wait_for_rotation(&mut self) {
        if std::mem::take(&mut self.force_rotation) {
            return;
        }
        let Some(pair) = self.current.get() else {
            return;
        };
        let leaf = pair.leaf();
        let deadline = next_rotation_deadline(leaf.not_before, leaf.not_after, fastrand::f64());
        tracing::info!(
            signer = self.signer_name,
            expiration = %jiff::Timestamp::try_from(leaf.not_after).map(|t| t.to_string()).unwrap_or_default(),
            deadline = %jiff::Timestamp::try_from(deadline).map(|t| t.to_string()).unwrap_or_default(),
            "Certificate expiration and rotation deadline"
        );
        loop {
            if let Some(template) = (self.template)()
                && !satisfies(&pair, &template)
            {
                tracing::info!(
                    signer = self.signer_name,
                    "Certificate template changed, rotating"
                );
                return;
            }
            let Ok(left) = deadline.duration_since(SystemTime::now()) else {
                return;
            };
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        }
    }

    /// One request for a new certificate; whether it was issued and put in use.
    async fn rotate(&self, client: &kube::Client) -> bool {
        tracing::info!(signer = self.signer_name, "Rotating certificates");
        match self.request(client).await {
            Ok(pair) => {
                tracing::info!(signer = self.signer_name, serial = %pair.leaf().serial, "Certificate rotated");
                self.current.set(pair);
                true
            }
            Err(e) => {
                tracing::error!(signer = self.signer_name, error = %e, "Failed while requesting a signed certificate from the control plane");
                false
            }
        }
    }

    async fn request(&self, client: &kube::Client) -> Result<CertificatePair, CertificateError> {
        let template = (self.template)().ok_or(CertificateError::NoTemplate)?;
        let key = csr::generate_key()?;
        let request = template.request_pem(&key)?;
        let (name, uid) =
            csr::request_certificate(client, &request, None, self.signer_name, self.usages, &key)
                .await?;
        let certificate =
            csr::wait_for_certificate(client, &name, &uid, CERTIFICATE_WAIT_TIMEOUT).await?;
        self.store
            .update(&certificate, key.serialize_pem().as_bytes())
    }
}

/// The client certificate and key the kubeconfig names, as files or inline data.
fn kubeconfig_pair(path: &Path) -> Result<Option<CertificatePair>, CertificateError> {
    use base64::Engine;
    if !path.exists() {
        return Ok(None);
    }
    let kubeconfig = read_kubeconfig(path)?;
    let Some(user) = current(&kubeconfig).1 else {
        return Ok(None);
    };
    let load = |data: &Option<String>, file: &Option<String>| -> Option<Vec<u8>> {
        match (data, file) {
            (Some(data), _) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok(),
            (None, Some(file)) => std::fs::read(file).ok(),
            (None, None) => None,
        }
    };
    let cert = load(&user.client_certificate_data, &user.client_certificate);
    let key = user
        .client_key_data
        .as_ref()
        .and_then(|k| {
            use secrecy::ExposeSecret;
            base64::engine::general_purpose::STANDARD
                .decode(k.expose_secret().trim())
                .ok()
        })
        .or_else(|| load(&None, &user.client_key));
    cert.zip(key)
        .map(|(cert, key)| CertificatePair::from_pem(&cert, &key))
        .transpose()
}

/// The serving certificate's names from the node's addresses, sorted and without
/// duplicates; None until there is an IP address.
fn serving_template(node: &CsrTemplate, addresses: &[NodeAddress]) -> Option<CsrTemplate> {
    let mut dns_names = BTreeSet::new();
    let mut ips = BTreeSet::new();
    for address in addresses.iter().filter(|a| !a.address.is_empty()) {
        let ip = address.address.parse::<IpAddr>().ok();
        match (address.type_.as_str(), ip) {
            ("Hostname", Some(ip)) | ("ExternalIP" | "InternalIP", Some(ip)) => {
                ips.insert((ip.to_string(), ip));
            }
            ("Hostname", None) | ("ExternalDNS" | "InternalDNS", _) => {
                dns_names.insert(address.address.clone());
            }
            _ => {}
        }
    }
    if ips.is_empty() {
        return None;
    }
    Some(CsrTemplate {
        dns_names: dns_names.into_iter().collect(),
        ip_addresses: ips.into_iter().map(|(_, ip)| ip).collect(),
        ..node.clone()
    })
}

/// Whether the certificate carries what the template asks for.
fn satisfies(pair: &CertificatePair, template: &CsrTemplate) -> bool {
    let leaf = pair.leaf();
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    let ips = |v: &[IpAddr]| v.iter().copied().collect::<BTreeSet<_>>();
    leaf.common_name == template.common_name
        && set(&leaf.organizations) == set(&template.organizations)
        && set(&leaf.dns_names) == set(&template.dns_names)
        && ips(&leaf.ip_addresses) == ips(&template.ip_addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_falls_between_70_and_90_percent_of_the_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(1000);
        assert_eq!(
            next_rotation_deadline(start, end, 0.0),
            start + Duration::from_secs(700)
        );
        assert_eq!(
            next_rotation_deadline(start, end, 0.5),
            start + Duration::from_secs(800)
        );
        let top = next_rotation_deadline(start, end, 0.999_999);
        assert!(top < start + Duration::from_secs(900) && top > start + Duration::from_secs(899));
        for _ in 0..1000 {
            let deadline = next_rotation_deadline(start, end, fastrand::f64());
            assert!(deadline >= start + Duration::from_secs(700));
            assert!(deadline < start + Duration::from_secs(900));
        }
        // An expired or inverted certificate is due at once.
        assert_eq!(next_rotation_deadline(end, start, 0.5), end);
    }

    fn address(type_: &str, address: &str) -> NodeAddress {
        NodeAddress {
            type_: type_.into(),
            address: address.into(),
        }
    }

    #[test]
    fn serving_names_come_from_the_node_addresses() {
        let node = CsrTemplate::node("node-a");
        assert_eq!(
            serving_template(&node, &[address("Hostname", "node-a")]),
            None
        );
        let template = serving_template(
            &node,
            &[
                address("InternalIP", "10.0.0.7"),
                address("Hostname", "node-a"),
                address("ExternalIP", "192.0.2.1"),
                address("InternalIP", "10.0.0.7"),
                address("InternalDNS", "node-a.internal"),
                address("ExternalIP", ""),
            ],
        )
        .expect("an IP is known");
        assert_eq!(template.common_name, "system:node:node-a");
        assert_eq!(template.organizations, vec!["system:nodes"]);
        assert_eq!(template.dns_names, vec!["node-a", "node-a.internal"]);
        assert_eq!(
            template.ip_addresses,
            vec![
                "10.0.0.7".parse::<IpAddr>().unwrap(),
                "192.0.2.1".parse().unwrap()
            ]
        );
    }
}
