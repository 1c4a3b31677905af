//! The CRI v1 gRPC client: [`RemoteRuntime`] talks to containerd or CRI-O over a unix socket.
//!
//! Deadlines follow upstream's `cri-client` (`remote_runtime.go`, `remote_image.go`): every call
//! gets the request timeout, except `RunPodSandbox` (twice that), `StopContainer` (the grace
//! period on top), `ExecSync` (the command timeout on top, or no deadline for a zero timeout),
//! and `PullImage` and `GetContainerEvents`, which have none: pulls of large images take as long
//! as they take.

mod call;
mod endpoint;
mod image_service;
mod runtime_service;

use crate::CriError;
use crate::api::image_service_client::ImageServiceClient;
use crate::api::runtime_service_client::RuntimeServiceClient;
use crate::api::{ImageFsInfoRequest, VersionRequest};
use std::time::Duration;
use tonic::transport::Channel;

/// Largest message we accept from the runtime; upstream uses 16 MiB too, because `ListContainers`
/// and `ListContainerStats` on a busy node exceed tonic's 4 MiB default.
const MAX_DECODING_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// A CRI runtime reached over gRPC. Cloning is cheap and clones share the connection.
#[derive(Clone, Debug)]
pub struct RemoteRuntime {
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    request_timeout: Duration,
}

impl RemoteRuntime {
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

        Ok(RemoteRuntime {
            runtime,
            image,
            request_timeout,
        })
    }

    /// The deadline of ordinary calls.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}
