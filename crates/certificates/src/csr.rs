//! Certificate signing requests, as client-go's util/certificate/csr: make the PKCS#10
//! request, create the CertificateSigningRequest (certificates.k8s.io/v1) and wait for its
//! certificate.

use std::net::IpAddr;
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, SanType};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::CertificateError;

/// The signer of kubelet client certificates.
pub const KUBE_APISERVER_CLIENT_KUBELET_SIGNER: &str =
    "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

pub const USAGE_DIGITAL_SIGNATURE: &str = "digital signature";
pub const USAGE_CLIENT_AUTH: &str = "client auth";
pub const USAGE_SERVER_AUTH: &str = "server auth";

/// What a requested certificate names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrTemplate {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl CsrTemplate {
    /// CN=system:node:NODE, O=system:nodes, as every kubelet certificate.
    pub fn node(node_name: &str) -> Self {
        CsrTemplate {
            common_name: format!("system:node:{node_name}"),
            organizations: vec!["system:nodes".to_string()],
            ..CsrTemplate::default()
        }
    }

    /// The PEM-encoded PKCS#10 request for `key`.
    pub fn request_pem(&self, key: &KeyPair) -> Result<String, CertificateError> {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        for organization in &self.organizations {
            subject.push(DnType::OrganizationName, organization.as_str());
        }
        subject.push(DnType::CommonName, self.common_name.as_str());
        params.distinguished_name = subject;
        for dns in &self.dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.as_str().try_into()?));
        }
        for ip in &self.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        Ok(params.serialize_request(key)?.pem()?)
    }
}

/// A new ECDSA P-256 key, the kind client-go generates for every request.
pub fn generate_key() -> Result<KeyPair, CertificateError> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

/// Creates the request: named `name`, or "csr-" plus a generated suffix. A request of that
/// name made earlier with the same key and subject is reused.
pub async fn request_certificate(
    client: &kube::Client,
    request_pem: &str,
    name: Option<&str>,
    signer_name: &str,
    usages: &[&str],
    key: &KeyPair,
) -> Result<(String, String), CertificateError> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: name.map(str::to_string),
            generate_name: name.is_none().then(|| "csr-".to_string()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request_pem.as_bytes().to_vec()),
            signer_name: signer_name.to_string(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let created = match api.create(&PostParams::default(), &csr).await {
        Ok(created) => created,
        Err(kube::Error::Api(status)) if status.is_already_exists() && name.is_some() => {
            let name = name.unwrap_or_default();
            tracing::info!(csr = name, "csr for this node already exists, reusing");
            let existing = api
                .get(name)
                .await
                .map_err(|e| CertificateError::Get(Box::new(e)))?;
            ensure_compatible(&existing, &csr, key)?;
            tracing::info!(csr = name, "csr for this node is still valid");
            existing
        }
        Err(e) => return Err(CertificateError::Create(Box::new(e))),
    };
    Ok((
        created.metadata.name.unwrap_or_default(),
        created.metadata.uid.unwrap_or_default(),
    ))
}

/// An existing request may stand for ours when it asks the same signer for the same
/// subject with the same key.
fn ensure_compatible(
    existing: &CertificateSigningRequest,
    ours: &CertificateSigningRequest,
    key: &KeyPair,
) -> Result<(), CertificateError> {
    let incompatible = |m: String| CertificateError::Incompatible(m);
    let parse = |csr: &CertificateSigningRequest| -> Result<(Vec<u8>, Vec<u8>), CertificateError> {
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(&csr.spec.request.0).map_err(
            |e: rustls::pki_types::pem::Error| incompatible(format!("unable to parse csr: {e}")),
        )?;
        let der: rustls::pki_types::CertificateSigningRequestDer<'_> = der;
        let (_, request) = X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| incompatible(format!("unable to parse csr: {e}")))?;
        let info = &request.certification_request_info;
        Ok((
            info.subject.as_raw().to_vec(),
            info.subject_pki.raw.to_vec(),
        ))
    };
    let (existing_subject, existing_key) = parse(existing)?;
    let (our_subject, _) = parse(ours)?;
    if existing_subject != our_subject {
        return Err(incompatible("csr subjects differ".to_string()));
    }
    if !existing.spec.signer_name.is_empty() && existing.spec.signer_name != ours.spec.signer_name {
        return Err(incompatible(format!(
            "csr signerNames differ: new {:?}, orig: {:?}",
            existing.spec.signer_name, ours.spec.signer_name
        )));
    }
    if existing_key != key.subject_public_key_info() {
        return Err(incompatible(
            "the csr was not made with the current private key".to_string(),
        ));
    }
    Ok(())
}

/// Waits until the request named `name` (of uid `uid`) is approved and its certificate
/// issued, and returns the certificate's PEM. A denied or failed request is an error with
/// the condition's reason and message.
pub async fn wait_for_certificate(
    client: &kube::Client,
    name: &str,
    uid: &str,
    timeout: Duration,
) -> Result<Vec<u8>, CertificateError> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let selector = format!("metadata.name={name}");
    let watching = async {
        loop {
            let list = match api.list(&ListParams::default().fields(&selector)).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::info!(csr = name, error = %e, "error fetching certificate signing request");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for csr in &list.items {
                if let Some(certificate) = issued(csr, name, uid)? {
                    return Ok(certificate);
                }
            }
            let version = list.metadata.resource_version.unwrap_or_default();
            let params = WatchParams::default().fields(&selector);
            let events = match api.watch(&params, &version).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::info!(csr = name, error = %e, "error watching certificate signing request");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut events = std::pin::pin!(events);
            loop {
                match events.try_next().await {
                    Ok(Some(WatchEvent::Added(csr) | WatchEvent::Modified(csr))) => {
                        if let Some(certificate) = issued(&csr, name, uid)? {
                            return Ok(certificate);
                        }
                    }
                    Ok(Some(WatchEvent::Deleted(_))) => {
                        return Err(CertificateError::Deleted(name.to_string()));
                    }
                    Ok(Some(WatchEvent::Bookmark(_))) => {}
                    Ok(Some(WatchEvent::Error(e))) => {
                        tracing::debug!(csr = name, error = %e, "watch ended, listing again");
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(csr = name, error = %e, "watch failed, listing again");
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(timeout, watching)
        .await
        .unwrap_or(Err(CertificateError::Timeout))
}

/// The issued certificate, None while pending; an error when denied, failed or replaced.
fn issued(
    csr: &CertificateSigningRequest,
    name: &str,
    uid: &str,
) -> Result<Option<Vec<u8>>, CertificateError> {
    if csr.metadata.uid.as_deref().unwrap_or_default() != uid {
        return Err(CertificateError::ChangedUid(name.to_string()));
    }
    let Some(status) = &csr.status else {
        return Ok(None);
    };
    let mut approved = false;
    for condition in status.conditions.iter().flatten() {
        let reason = || condition.reason.clone().unwrap_or_default();
        let message = || condition.message.clone().unwrap_or_default();
        match condition.type_.as_str() {
            "Denied" => {
                return Err(CertificateError::Denied {
                    reason: reason(),
                    message: message(),
                });
            }
            "Failed" => {
                return Err(CertificateError::Failed {
                    reason: reason(),
                    message: message(),
                });
            }
            "Approved" => approved = true,
            _ => {}
        }
    }
    if !approved {
        return Ok(None);
    }
    match &status.certificate {
        Some(certificate) if !certificate.0.is_empty() => {
            tracing::info!(csr = name, "certificate signing request is issued");
            Ok(Some(certificate.0.clone()))
        }
        _ => {
            tracing::info!(
                csr = name,
                "certificate signing request is approved, waiting to be issued"
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_node() {
        let key = generate_key().expect("key");
        let mut template = CsrTemplate::node("node-a");
        template.dns_names = vec!["node-a".into()];
        template.ip_addresses = vec!["10.0.0.7".parse().unwrap()];
        let pem = template.request_pem(&key).expect("csr");
        let params = rcgen::CertificateSigningRequestParams::from_pem(&pem).expect("parses");
        let dn = &params.params.distinguished_name;
        assert_eq!(
            dn.get(&DnType::CommonName),
            Some(&rcgen::DnValue::Utf8String("system:node:node-a".into()))
        );
        assert_eq!(
            dn.get(&DnType::OrganizationName),
            Some(&rcgen::DnValue::Utf8String("system:nodes".into()))
        );
        assert_eq!(params.params.subject_alt_names.len(), 2);
        assert_eq!(
            params.public_key.subject_public_key_info(),
            key.subject_public_key_info()
        );
    }
}
