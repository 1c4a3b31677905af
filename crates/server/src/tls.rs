//! The rustls configuration of the kubelet port: serving certificate, client CA, TLS versions
//! and cipher suites, from upstream's flag values.

mod self_signed;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};

use crate::ServerConfig;
use crate::error::ServerError;

pub(crate) fn server_config(
    cfg: &ServerConfig,
    node_name: &str,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let provider = Arc::new(CryptoProvider {
        cipher_suites: cipher_suites(&cfg.tls_cipher_suites)?,
        ..ring::default_provider()
    });
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(cfg.tls_min_version.as_deref()))
        .map_err(|error| ServerError::Tls(error.to_string()))?;
    let builder = match &cfg.client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca_file)
                .map_err(|error| pem_error("client CA file", ca_file, error))?
            {
                let cert = cert.map_err(|error| pem_error("client CA file", ca_file, error))?;
                roots
                    .add(cert)
                    .map_err(|error| pem_error("client CA file", ca_file, error))?;
            }
            // A request without a certificate goes on to anonymous auth (or a 401), as with
            // upstream's VerifyClientCertIfGiven; a certificate the CA did not sign fails the
            // handshake.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|error| ServerError::Tls(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = match &cfg.cert_resolver {
        Some(resolver) => builder.with_cert_resolver(resolver.clone()),
        None => {
            let (chain, key) = serving_pair(cfg, node_name)?;
            builder.with_single_cert(chain, key).map_err(|error| {
                ServerError::Tls(format!("serving certificate and key: {error}"))
            })?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// --tls-cert-file and --tls-private-key-file, or a self-signed pair kept in the cert dir.
fn serving_pair(
    cfg: &ServerConfig,
    node_name: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServerError> {
    let (cert_file, key_file) = match (&cfg.tls_cert_file, &cfg.tls_private_key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => self_signed::ensure(&cfg.cert_dir, node_name, &cfg.node_ips)?,
    };
    let chain = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| pem_error("serving certificate", &cert_file, error))?;
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|error| pem_error("serving private key", &key_file, error))?;

    Ok((chain, key))
}

fn pem_error(what: &'static str, path: &Path, error: impl std::fmt::Display) -> ServerError {
    ServerError::Pem {
        what,
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// rustls speaks TLS 1.2 and 1.3 only, so a minimum of 1.0 or 1.1 means 1.2.
fn versions(min_version: Option<&str>) -> &'static [&'static SupportedProtocolVersion] {
    match min_version {
        Some("VersionTLS13") => TLS13_ONLY,
        _ => rustls::ALL_VERSIONS,
    }
}

/// Go's names for the TLS 1.2 suites rustls implements. TLS 1.3 suites are always on, as in
/// Go, where they are not configurable.
fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, ServerError> {
    use ring::cipher_suite as cs;
    if names.is_empty() {
        return Ok(ring::default_provider().cipher_suites);
    }
    let mut suites = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    for name in names {
        let suite = match name.as_str() {
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            }
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            }
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
            | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            }
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"
            | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
                cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            }
            "TLS_AES_128_GCM_SHA256"
            | "TLS_AES_256_GCM_SHA384"
            | "TLS_CHACHA20_POLY1305_SHA256" => {
                continue;
            }
            other => return Err(ServerError::CipherSuite(other.to_string())),
        };
        suites.push(suite);
    }
    Ok(suites)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_cipher_suite_names_map_to_rustls() {
        let suites = cipher_suites(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]).unwrap();
        assert_eq!(suites.len(), 4);
        assert!(matches!(
            cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()]),
            Err(ServerError::CipherSuite(name)) if name == "TLS_RSA_WITH_AES_128_CBC_SHA"
        ));
        assert_eq!(versions(Some("VersionTLS13")).len(), 1);
        assert_eq!(versions(Some("VersionTLS10")).len(), 2);
    }
}
