//! The test cluster's certificate authority: it signs the server's serving certificate, the
//! client certificates tests ask for, approved CertificateSigningRequests and the certificate
//! the server presents to kubelets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The object identifier of an organization (O) attribute.
const OID_ORGANIZATION: [u64; 4] = [2, 5, 4, 10];
/// Signed certificates start this much in the past, as upstream's signer backdates them, so
/// a peer whose clock is a little behind accepts them.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// How long the CA, the serving certificate and test client certificates are valid.
const LONG_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why a certificate could not be made or a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot generate or sign a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rcgen keeps one value per subject attribute type, so two organizations is the most a
    /// subject can carry here (the second goes under the same OID as a custom attribute).
    #[error("a subject here may carry at most 2 organizations, got {0}")]
    TooManyOrganizations(usize),
    #[error("{0}")]
    InvalidRequest(String),
}

/// A self-signed CA (CN=kubernetes, as kubeadm names it) with an ECDSA P-256 key.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The subject and extensions of a certificate to sign.
struct Subject<'a> {
    common_name: &'a str,
    organizations: &'a [String],
    sans: Vec<SanType>,
    key_usages: Vec<KeyUsagePurpose>,
    extended: Vec<ExtendedKeyUsagePurpose>,
    validity: Duration,
}

impl TestCa {
    pub fn generate() -> Result<Self, CaError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "kubernetes");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LONG_VALIDITY;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    fn sign(&self, subject: Subject<'_>, key: &impl PublicKeyData) -> Result<String, CaError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, subject.common_name);
        match subject.organizations {
            [] => {}
            [o] => params
                .distinguished_name
                .push(DnType::OrganizationName, o.as_str()),
            [first, second] => {
                params
                    .distinguished_name
                    .push(DnType::OrganizationName, first.as_str());
                params.distinguished_name.push(
                    DnType::CustomDnType(OID_ORGANIZATION.to_vec()),
                    DnValue::Utf8String(second.clone()),
                );
            }
            more => return Err(CaError::TooManyOrganizations(more.len())),
        }
        params.subject_alt_names = subject.sans;
        params.key_usages = subject.key_usages;
        params.extended_key_usages = subject.extended;
        params.serial_number = Some(SerialNumber::from_slice(
            &uuid::Uuid::new_v4().as_bytes()[..16],
        ));
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + subject.validity;
        params.use_authority_key_identifier_extension = true;
        Ok(params.signed_by(key, &self.issuer)?.pem())
    }

    /// A new key and a certificate for it, signed by this CA.
    fn issue(&self, subject: Subject<'_>) -> Result<IssuedCert, CaError> {
        let key = KeyPair::generate()?;
        Ok(IssuedCert {
            cert_pem: self.sign(subject, &key)?,
            key_pem: key.serialize_pem(),
        })
    }

    /// A client certificate: CN is the user name, each O a group, as the API server reads them.
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[String],
    ) -> Result<IssuedCert, CaError> {
        self.issue(Subject {
            common_name,
            organizations,
            sans: Vec::new(),
            key_usages: vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            extended: vec![ExtendedKeyUsagePurpose::ClientAuth],
            validity: LONG_VALIDITY,
        })
    }

    /// The API server's serving certificate, for 127.0.0.1, ::1 and localhost.
    pub fn issue_serving_cert(&self) -> Result<IssuedCert, CaError> {
        let localhost =
            SanType::DnsName("localhost".try_into().expect("localhost is an IA5 string"));
        self.issue(Subject {
            common_name: "kube-apiserver",
            organizations: &[],
            sans: vec![
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                localhost,
            ],
            key_usages: vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            extended: vec![ExtendedKeyUsagePurpose::ServerAuth],
            validity: LONG_VALIDITY,
        })
    }

    /// Signs a PEM certificate request (a CSR's spec.request) the way upstream's signer does:
    /// subject and subject alternative names from the request, key usages from the CSR's
    /// spec.usages, valid for `validity`.
    pub fn sign_request(
        &self,
        request_pem: &[u8],
        usages: &[String],
        validity: Duration,
    ) -> Result<String, CaError> {
        let request = ParsedRequest::parse(request_pem)?;
        let (key_usages, extended) = key_usages(usages)?;
        self.sign(
            Subject {
                common_name: &request.common_name,
                organizations: &request.organizations,
                sans: request.sans,
                key_usages,
                extended,
                validity,
            },
            &request.public_key,
        )
    }
}

/// What a signer reads from a PKCS#10 certificate request.
pub struct ParsedRequest {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub sans: Vec<SanType>,
    public_key: SubjectPublicKeyInfo,
}

impl ParsedRequest {
    /// Parses and verifies (self-signature) a PEM "CERTIFICATE REQUEST".
    pub fn parse(request_pem: &[u8]) -> Result<Self, CaError> {
        let invalid = |what: String| CaError::InvalidRequest(what);
        let (_, pem) = x509_parser::pem::parse_x509_pem(request_pem)
            .map_err(|e| invalid(format!("PEM block type must be CERTIFICATE REQUEST: {e}")))?;
        if pem.label != "CERTIFICATE REQUEST" {
            return Err(invalid(
                "PEM block type must be CERTIFICATE REQUEST".to_string(),
            ));
        }
        let (_, request) = X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| invalid(format!("cannot parse the certificate request: {e}")))?;
        request.verify_signature().map_err(|e| {
            invalid(format!(
                "the certificate request's signature is invalid: {e}"
            ))
        })?;
        let info = &request.certification_request_info;
        let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| {
            attr.as_str().map(str::to_string).unwrap_or_default()
        };
        let common_name = info
            .subject
            .iter_common_name()
            .next()
            .map(text)
            .unwrap_or_default();
        let organizations = info.subject.iter_organization().map(text).collect();
        let mut sans = Vec::new();
        for ext in request.requested_extensions().into_iter().flatten() {
            if let ParsedExtension::SubjectAlternativeName(names) = ext {
                for name in &names.general_names {
                    sans.push(san(name)?);
                }
            }
        }
        let public_key = SubjectPublicKeyInfo::from_der(info.subject_pki.raw)?;
        Ok(ParsedRequest {
            common_name,
            organizations,
            sans,
            public_key,
        })
    }

    pub fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| match s {
            SanType::DnsName(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Whether the request asks for names other than DNS names and IP addresses.
    pub fn has_other_names(&self) -> bool {
        self.sans
            .iter()
            .any(|s| !matches!(s, SanType::DnsName(_) | SanType::IpAddress(_)))
    }
}

fn san(name: &GeneralName<'_>) -> Result<SanType, CaError> {
    let ia5 = |s: &str| {
        s.try_into()
            .map_err(|_| CaError::InvalidRequest(format!("{s:?} is not an IA5 string")))
    };
    Ok(match name {
        GeneralName::DNSName(n) => SanType::DnsName(ia5(n)?),
        GeneralName::RFC822Name(n) => SanType::Rfc822Name(ia5(n)?),
        GeneralName::URI(n) => SanType::URI(ia5(n)?),
        GeneralName::IPAddress(bytes) => SanType::IpAddress(match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("length checked")),
            16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("length checked")),
            n => {
                return Err(CaError::InvalidRequest(format!(
                    "an IP address of {n} bytes"
                )));
            }
        }),
        other => {
            return Err(CaError::InvalidRequest(format!(
                "unsupported subject alternative name {other}"
            )));
        }
    })
}

/// The certificates.k8s.io usages as X.509 key usages and extended key usages.
fn key_usages(
    usages: &[String],
) -> Result<(Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>), CaError> {
    let mut key = Vec::new();
    let mut extended = Vec::new();
    for usage in usages {
        match usage.as_str() {
            "digital signature" => key.push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => key.push(KeyUsagePurpose::KeyEncipherment),
            "content commitment" => key.push(KeyUsagePurpose::ContentCommitment),
            "key agreement" => key.push(KeyUsagePurpose::KeyAgreement),
            "cert sign" => key.push(KeyUsagePurpose::KeyCertSign),
            "crl sign" => key.push(KeyUsagePurpose::CrlSign),
            "client auth" => extended.push(ExtendedKeyUsagePurpose::ClientAuth),
            "server auth" => extended.push(ExtendedKeyUsagePurpose::ServerAuth),
            "code signing" => extended.push(ExtendedKeyUsagePurpose::CodeSigning),
            "email protection" => extended.push(ExtendedKeyUsagePurpose::EmailProtection),
            "timestamping" => extended.push(ExtendedKeyUsagePurpose::TimeStamping),
            "ocsp signing" => extended.push(ExtendedKeyUsagePurpose::OcspSigning),
            "any" => extended.push(ExtendedKeyUsagePurpose::Any),
            other => {
                return Err(CaError::InvalidRequest(format!(
                    "unsupported key usage {other:?}"
                )));
            }
        }
    }
    Ok((key, extended))
}

/// The user a client certificate names: CN is the user, each O a group.
pub fn certificate_user(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let text =
        |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().ok().map(str::to_string);
    let user = cert.subject().iter_common_name().next().and_then(text)?;
    let groups = cert
        .subject()
        .iter_organization()
        .filter_map(text)
        .collect();
    Some((user, groups))
}
