//! The API client the kubelet builds from --kubeconfig.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kubelet_certificates::{CurrentCertificate, client_builder};

use crate::NodeStatusError;
use crate::rate_limit::{ApiRateLimit, RateLimitLayer};

/// Builds a client from a kubeconfig file: its current context, with the client certificate,
/// bearer token or token file it names, its requests held to `limit`. kube speaks JSON on
/// the wire.
pub async fn client_from_kubeconfig(
    path: &Path,
    limit: ApiRateLimit,
) -> Result<kube::Client, NodeStatusError> {
    build(path, limit, None).await
}

/// As [`client_from_kubeconfig`], but TLS handshakes present `certificate` (the client
/// certificate manager's, rotateCertificates) instead of the kubeconfig's: a rotated
/// certificate is used by the same client, whose connections are redialled on rotation.
pub async fn client_from_kubeconfig_with_certificate(
    path: &Path,
    limit: ApiRateLimit,
    certificate: CurrentCertificate,
) -> Result<kube::Client, NodeStatusError> {
    build(path, limit, Some(certificate)).await
}

async fn build(
    path: &Path,
    limit: ApiRateLimit,
    certificate: Option<CurrentCertificate>,
) -> Result<kube::Client, NodeStatusError> {
    let kubeconfig_error = |source| NodeStatusError::Kubeconfig {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kubeconfig_error)?;
    let builder =
        client_builder(config, certificate).map_err(|source| NodeStatusError::Client {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    Ok(builder.with_layer(&RateLimitLayer::new(limit)).build())
}

/// The content type the client speaks for a --kube-api-content-type value: always JSON; any
/// other request (upstream's default is protobuf) is answered with a warning.
pub fn wire_content_type(requested: &str) -> &'static str {
    const JSON: &str = "application/json";
    if requested != JSON {
        tracing::warn!(
            requested,
            "--kube-api-content-type {requested} is not supported, {JSON} is used"
        );
    }
    JSON
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_always_spoken() {
        assert_eq!(wire_content_type("application/json"), "application/json");
        assert_eq!(
            wire_content_type("application/vnd.kubernetes.protobuf"),
            "application/json"
        );
    }
}
