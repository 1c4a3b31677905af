//! Upstream's fallback serving certificate: self-signed, for the node name, kept in the cert
//! dir as kubelet.crt and kubelet.key and reused on the next start.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use crate::error::ServerError;

pub(super) fn ensure(
    cert_dir: &Path,
    node_name: &str,
    node_ips: &[IpAddr],
) -> Result<(PathBuf, PathBuf), ServerError> {
    let cert_file = cert_dir.join("kubelet.crt");
    let key_file = cert_dir.join("kubelet.key");
    if cert_file.exists() && key_file.exists() {
        return Ok((cert_file, key_file));
    }
    let mut params = CertificateParams::new(vec![node_name.to_string()])?;
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        format!("{node_name}@{}", jiff::Timestamp::now().as_second()),
    );
    params.distinguished_name = name;
    params
        .subject_alt_names
        .push(SanType::DnsName("localhost".try_into()?));
    for ip in std::iter::once(IpAddr::V4(Ipv4Addr::LOCALHOST)).chain(node_ips.iter().copied()) {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::create_dir_all(cert_dir).map_err(|source| ServerError::Write {
        path: cert_dir.to_path_buf(),
        source,
    })?;
    write(&cert_file, &cert.pem(), 0o644)?;
    write(&key_file, &key.serialize_pem(), 0o600)?;
    tracing::info!(cert = %cert_file.display(), "generated a self-signed serving certificate");
    Ok((cert_file, key_file))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), ServerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|source| ServerError::Write {
            path: path.to_path_buf(),
            source,
        })
}
