//! A certificate chain with its private key: what the stores hold and the TLS stacks present.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;

use crate::CertificateError;

/// What the kubelet reads from the leaf certificate: its lifetime, subject and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The serial number, as colon-separated hex bytes.
    pub serial: String,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

/// A certificate chain (leaf first) and its key, ready for rustls.
pub struct CertificatePair {
    certified: Arc<CertifiedKey>,
    leaf: Leaf,
    /// The chain's PEM followed by the key's PEM, as the store writes it.
    pem: Vec<u8>,
}

impl std::fmt::Debug for CertificatePair {
    /// The leaf only: the PEM holds the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificatePair")
            .field("leaf", &self.leaf)
            .finish_non_exhaustive()
    }
}

impl CertificatePair {
    /// Parses the certificates and the private key from PEM (one buffer may hold both) and
    /// checks that the key belongs to the leaf.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertificateError> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            CertificateError::InvalidPair(format!("{what}: {e}"))
        };
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("cannot parse the certificates", &e))?;
        let Some(first) = chain.first() else {
            return Err(CertificateError::InvalidPair(
                "no certificate in the PEM data".into(),
            ));
        };
        let leaf = parse_leaf(first)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| invalid("cannot parse the private key", &e))?;
        let key_pem = pem_of_key(&key);
        let signing_key = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| invalid("unsupported private key", &e))?;
        let certified = CertifiedKey::new(chain.clone(), signing_key);
        certified
            .keys_match()
            .map_err(|e| invalid("the private key does not match the certificate", &e))?;
        let mut pem = Vec::new();
        for cert in &chain {
            pem.extend_from_slice(pem_block("CERTIFICATE", cert).as_bytes());
        }
        pem.extend_from_slice(key_pem.as_bytes());
        Ok(CertificatePair {
            certified: Arc::new(certified),
            leaf,
            pem,
        })
    }

    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        self.certified.clone()
    }

    pub fn leaf(&self) -> &Leaf {
        &self.leaf
    }

    /// The chain's PEM followed by the key's PEM.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// Whether `now` lies within the leaf's validity.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.leaf.not_before <= now && now <= self.leaf.not_after
    }
}

fn parse_leaf(der: &CertificateDer<'_>) -> Result<Leaf, CertificateError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertificateError::InvalidPair(format!("cannot parse the certificate: {e}")))?;
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    };
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                        ip_addresses.push(IpAddr::from(octets));
                    } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                        ip_addresses.push(IpAddr::from(octets));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Leaf {
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
        serial: cert.raw_serial_as_string(),
        common_name,
        organizations,
        dns_names,
        ip_addresses,
    })
}

fn pem_of_key(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem_block(label, key.secret_der())
}

/// One PEM block with 64-column base64 lines.
pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    /// A self-signed pair for `cn`, valid from now for `lifetime`.
    pub(crate) fn self_signed(cn: &str, lifetime: Duration) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, "system:nodes");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::DnsName("node-a".try_into().expect("dns")),
            SanType::IpAddress("10.0.0.7".parse().expect("ip")),
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now;
        params.not_after = now + lifetime;
        let cert = params.self_signed(&key).expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_pair_reads_its_leaf() {
        let (cert, key) = self_signed("system:node:a", Duration::from_secs(3600));
        let pair = CertificatePair::from_pem(cert.as_bytes(), key.as_bytes()).expect("pair");
        let leaf = pair.leaf();
        assert_eq!(leaf.common_name, "system:node:a");
        assert_eq!(leaf.organizations, vec!["system:nodes"]);
        assert_eq!(leaf.dns_names, vec!["node-a"]);
        assert_eq!(
            leaf.ip_addresses,
            vec!["10.0.0.7".parse::<IpAddr>().unwrap()]
        );
        assert!(pair.is_valid_at(SystemTime::now()));
        let again = CertificatePair::from_pem(pair.pem(), pair.pem()).expect("combined pem");
        assert_eq!(again.leaf(), leaf);
    }

    #[test]
    fn a_foreign_key_is_refused() {
        let (cert, _) = self_signed("a", Duration::from_secs(60));
        let (_, other_key) = self_signed("b", Duration::from_secs(60));
        assert!(CertificatePair::from_pem(cert.as_bytes(), other_key.as_bytes()).is_err());
    }
}
