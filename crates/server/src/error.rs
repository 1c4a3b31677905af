use std::path::PathBuf;

/// Why the kubelet server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("webhook {0} needs the API server: no client provided")]
    NoApiClient(&'static str),
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path} holds no usable PEM data: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot generate the self-signed serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "TLS cipher suite {0:?} is not supported (rustls offers only ECDHE with AES-GCM or ChaCha20-Poly1305)"
    )]
    CipherSuite(String),
    #[error("invalid TLS setup: {0}")]
    Tls(String),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}
