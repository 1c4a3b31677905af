//! One registry endpoint (a mirror or the server) as the pull uses it: an oci-client `Client`
//! configured from the endpoint's hosts.toml settings, the repository on it, and the mapping of
//! the client's errors to ours.

use super::auth::{self, Credentials};
use crate::content::Ingest;
use crate::error::ImageError;
use crate::hosts::Endpoint;
use crate::manifest::{ACCEPTED, Descriptor};
use futures::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::time::Duration;

/// A registry that does not answer within this long is treated as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A transfer that stalls for this long is broken off (not a limit on the whole transfer).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// rustls is built without a default provider (no aws-lc, so no cmake): ring is installed once
/// for the process, unless the embedding program installed one already.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub(crate) struct Remote {
    client: Client,
    endpoint: Endpoint,
    /// The registry of the image reference (`docker.io`), sent to mirrors as `?ns=`.
    upstream: String,
    path: String,
    auth: RegistryAuth,
}

impl Remote {
    /// A client for `endpoint`; an identity token is exchanged for an access token here.
    pub async fn new(
        endpoint: &Endpoint,
        upstream: &str,
        path: &str,
        credentials: &Credentials,
    ) -> Result<Remote, ImageError> {
        install_crypto_provider();
        let mut certificates = Vec::new();
        for ca in &endpoint.ca {
            let data = std::fs::read(ca).map_err(|e| ImageError::io("read CA file", ca, e))?;
            certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let auth = match credentials {
            Credentials::Registry(auth) => auth.clone(),
            Credentials::IdentityToken(token) => {
                let http = Self::http_client(endpoint, &certificates)?;
                let scheme = if endpoint.plain_http { "http" } else { "https" };
                let base = format!("{scheme}://{}", endpoint.host);
                auth::exchange_identity_token(&http, &endpoint.host, &base, path, token).await?
            }
        };
        let config = ClientConfig {
            protocol: if endpoint.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: endpoint.skip_verify,
            extra_root_certificates: certificates,
            // Indexes are resolved by our own code (manifest::select_platform).
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..Default::default()
        };
        let client = Client::try_from(config).map_err(|e| ImageError::Registry {
            registry: endpoint.host.clone(),
            cause: format!("client setup: {e}"),
        })?;
        Ok(Remote {
            client,
            endpoint: endpoint.clone(),
            upstream: upstream.to_string(),
            path: path.to_string(),
            auth,
        })
    }

    /// A plain HTTP client with the TLS settings of `endpoint`, as oci-client makes its own.
    fn http_client(
        endpoint: &Endpoint,
        certificates: &[Certificate],
    ) -> Result<reqwest::Client, ImageError> {
        let setup = |e: reqwest::Error| ImageError::Registry {
            registry: endpoint.host.clone(),
            cause: format!("client setup: {e}"),
        };
        let roots = certificates
            .iter()
            .map(|c| reqwest::Certificate::from_pem(&c.data))
            .collect::<Result<Vec<_>, _>>()
            .map_err(setup)?;
        reqwest::Client::builder()
            .danger_accept_invalid_certs(endpoint.skip_verify)
            .tls_certs_merge(roots)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(setup)
    }

    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    fn reference(&self, tag: Option<&str>, digest: Option<&str>) -> Reference {
        let registry = if self.endpoint.mirror {
            self.upstream.clone()
        } else {
            self.endpoint.host.clone()
        };
        let path = self.path.clone();
        let mut reference = match (tag, digest) {
            (_, Some(digest)) => Reference::with_digest(registry, path, digest.to_string()),
            (tag, None) => Reference::with_tag(registry, path, tag.unwrap_or("latest").into()),
        };
        if self.endpoint.mirror {
            reference.set_mirror_registry(self.endpoint.host.clone());
        }
        reference
    }

    /// Fetches a manifest or index by tag or digest; returns its bytes and digest.
    pub async fn manifest(
        &self,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let reference = self.reference(tag, digest);
        let what = match (tag, digest) {
            (_, Some(d)) => format!("manifest {d}"),
            (t, None) => format!("tag {:?}", t.unwrap_or("latest")),
        };
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&reference, &self.auth, ACCEPTED)
            .await
            .map_err(|e| self.error(&what, e))?;
        Ok((bytes.to_vec(), digest))
    }

    /// Streams blob `desc` into `ingest` (the content store verifies digest and size on commit;
    /// the client's stream checks the digest too).
    pub async fn blob(&self, desc: &Descriptor, ingest: &mut Ingest) -> Result<(), ImageError> {
        let reference = self.reference(None, Some(&desc.digest));
        let oci = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&reference, &oci)
            .await
            .map_err(|e| self.error(&format!("blob {}", desc.digest), e))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ImageError::Download {
                digest: desc.digest.clone(),
                cause: e.to_string(),
            })?;
            if ingest.size() + chunk.len() as u64 > desc.size {
                return Err(ImageError::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: ingest.size() + chunk.len() as u64,
                });
            }
            // Straight to the file, not through the blocking pool: a chunk is a few KiB and
            // lands in the page cache; the fsync happens once, at commit.
            ingest.write(&chunk)?;
        }
        Ok(())
    }

    fn error(&self, what: &str, e: OciDistributionError) -> ImageError {
        let registry = self.endpoint.host.clone();
        let cause = error_chain(&e);
        let unauthorized = |registry, cause| match self.auth {
            RegistryAuth::Anonymous => ImageError::NoCredentials { registry, cause },
            _ => ImageError::Unauthorized { registry, cause },
        };
        match &e {
            OciDistributionError::RequestError(_) => ImageError::Unreachable { registry, cause },
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => unauthorized(registry, cause),
            OciDistributionError::ImageManifestNotFoundError(_) => ImageError::NotFound {
                what: what.to_string(),
                registry,
                cause,
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let code = envelope.errors.first().map(|e| &e.code);
                match code {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown,
                    ) => ImageError::NotFound {
                        what: what.to_string(),
                        registry,
                        cause,
                    },
                    Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => {
                        unauthorized(registry, cause)
                    }
                    _ => ImageError::Registry { registry, cause },
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => ImageError::NotFound {
                what: what.to_string(),
                registry,
                cause,
            },
            OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => unauthorized(registry, cause),
            OciDistributionError::DigestError(_) => ImageError::Invalid {
                what: "registry response for",
                digest: what.to_string(),
                cause,
            },
            _ => ImageError::Registry { registry, cause },
        }
    }
}

/// The error and its causes: the HTTP client's own message ("error sending request") says
/// nothing of why (connection refused, an unknown certificate authority).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
