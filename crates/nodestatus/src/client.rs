//! The API client the kubelet builds from --kubeconfig.

use std::path::Path;

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::NodeStatusError;
use crate::rate_limit::{ApiRateLimit, RateLimitLayer};

/// Builds a client from a kubeconfig file: its current context, with the client certificate,
/// bearer token or token file it names, its requests held to `limit`. kube speaks JSON on
/// the wire.
pub async fn client_from_kubeconfig(
    path: &Path,
    limit: ApiRateLimit,
) -> Result<kube::Client, NodeStatusError> {
    let kubeconfig_error = |source| NodeStatusError::Kubeconfig {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kubeconfig_error)?;
    let builder = ClientBuilder::try_from(config).map_err(|source| NodeStatusError::Client {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(builder.with_layer(&RateLimitLayer::new(limit)).build())
}
