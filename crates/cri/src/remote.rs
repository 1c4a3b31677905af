//! The CRI v1 gRPC client: [`RemoteRuntime`] talks to containerd, CRI-O or the built-in runtime's
//! socket. Requests, deadlines and error mapping are [`CriClient`]'s; this module adds the
//! connection and the [`Grpc`] transport.

mod endpoint;
mod grpc;

pub use grpc::Grpc;

use crate::CriError;
use crate::api::image_service_client::ImageServiceClient;
use crate::api::runtime_service_client::RuntimeServiceClient;
use crate::api::{ImageFsInfoRequest, VersionRequest};
use crate::client::CriClient;
use crate::client::call;
use std::time::Duration;

/// Largest message we accept from the runtime; upstream uses 16 MiB too, because `ListContainers`
/// and `ListContainerStats` on a busy node exceed tonic's 4 MiB default.
const MAX_DECODING_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// A CRI runtime reached over gRPC. Cloning is cheap and clones share the connection.
pub type RemoteRuntime = CriClient<Grpc>;

impl CriClient<Grpc> {
    /// Connects to the runtime and image services and checks that they answer.
    ///
    /// Endpoints are `unix:///path` or a bare absolute path. An empty `image_endpoint` means the
    /// runtime endpoint, as in upstream's kubelet. `request_timeout` bounds the connection and the
    /// check as well as each later call.
    pub async fn connect(
        runtime_endpoint: &str,
        image_endpoint: &str,
        request_timeout: Duration,
    ) -> Result<RemoteRuntime, CriError> {
        let runtime_channel = endpoint::connect(runtime_endpoint, request_timeout).await?;
        let runtime = RuntimeServiceClient::new(runtime_channel.clone())
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
        let version = call::with_deadline(
            "Version",
            Some(request_timeout),
            runtime.clone().version(VersionRequest {
                version: String::new(),
            }),
        )
        .await
        .map_err(|err| endpoint::unusable(runtime_endpoint, &err))?;
        tracing::info!(
            endpoint = runtime_endpoint,
            runtime = %version.runtime_name,
            version = %version.runtime_version,
            api = %version.runtime_api_version,
            "connected to the container runtime"
        );

        let image_channel = if image_endpoint.is_empty() || image_endpoint == runtime_endpoint {
            runtime_channel
        } else {
            let channel = endpoint::connect(image_endpoint, request_timeout).await?;
            // The image socket need not serve RuntimeService, so check it with an image call,
            // as upstream does.
            call::with_deadline(
                "ImageFsInfo",
                Some(request_timeout),
                ImageServiceClient::new(channel.clone()).image_fs_info(ImageFsInfoRequest {}),
            )
            .await
            .map_err(|err| endpoint::unusable(image_endpoint, &err))?;
            channel
        };
        let image = ImageServiceClient::new(image_channel)
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);

        Ok(CriClient::with_transport(
            Grpc { runtime, image },
            request_timeout,
        ))
    }
}
