//! The built-in runtime in the kubelet's own process: [`InProcess`] calls a runtime's CRI tonic
//! services directly, without a socket or a gRPC hop, through the same [`CriClient`] as
//! [`RemoteRuntime`](crate::remote::RemoteRuntime), so requests, deadlines and the mapping of
//! every `tonic::Status` to [`CriError`](crate::CriError) are the same either way.

use crate::api::image_service_server::ImageService as ImageServer;
use crate::api::runtime_service_server::RuntimeService as RuntimeServer;
use crate::api::{
    AttachRequest, AttachResponse, ContainerStatusRequest, ContainerStatusResponse,
    CreateContainerRequest, CreateContainerResponse, ExecRequest, ExecResponse, ExecSyncRequest,
    ExecSyncResponse, GetEventsRequest, ImageFsInfoRequest, ImageFsInfoResponse,
    ImageStatusRequest, ImageStatusResponse, ListContainerStatsRequest, ListContainerStatsResponse,
    ListContainersRequest, ListContainersResponse, ListImagesRequest, ListImagesResponse,
    ListPodSandboxRequest, ListPodSandboxResponse, PodSandboxStatusRequest,
    PodSandboxStatusResponse, PortForwardRequest, PortForwardResponse, PullImageRequest,
    PullImageResponse, RemoveContainerRequest, RemoveContainerResponse, RemoveImageRequest,
    RemoveImageResponse, RemovePodSandboxRequest, RemovePodSandboxResponse,
    ReopenContainerLogRequest, ReopenContainerLogResponse, RunPodSandboxRequest,
    RunPodSandboxResponse, StartContainerRequest, StartContainerResponse, StatusRequest,
    StatusResponse, StopContainerRequest, StopContainerResponse, StopPodSandboxRequest,
    StopPodSandboxResponse, UpdateContainerResourcesRequest, UpdateContainerResourcesResponse,
    VersionRequest, VersionResponse,
};
use crate::client::CriClient;
use crate::transport::{EventStream, Reply, Transport};
use futures::StreamExt;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A CRI runtime in this process.
pub type InProcess<S> = CriClient<Local<S>>;

impl<S: RuntimeServer + ImageServer> CriClient<Local<S>> {
    /// The kubelet's view of `service`, with `request_timeout` as the deadline of ordinary calls.
    pub fn new(service: S, request_timeout: Duration) -> Self {
        CriClient::with_transport(Local(Arc::new(service)), request_timeout)
    }
}

/// The [`Transport`] to a service implementing both CRI tonic server traits.
pub struct Local<S>(Arc<S>);

impl<S> Clone for Local<S> {
    fn clone(&self) -> Self {
        Local(self.0.clone())
    }
}

impl<S> fmt::Debug for Local<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Local")
    }
}

impl<S: Send + Sync + 'static> Local<S> {
    /// Runs one call on its own task: a caller that gives up on a deadline ends only its wait and
    /// the runtime finishes the call, since a future dropped at any await could leave a sandbox
    /// or container half made (a Go runtime checks its cancelled context at safe points instead).
    /// A panic in the runtime becomes an INTERNAL status of this call.
    async fn call<T, F, Fut>(&self, rpc: F) -> Reply<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<S>) -> Fut,
        Fut: Future<Output = Reply<T>> + Send + 'static,
    {
        tokio::spawn(rpc(self.0.clone()))
            .await
            .unwrap_or_else(|failed| {
                Err(tonic::Status::internal(format!(
                    "the runtime failed: {failed}"
                )))
            })
    }
}

#[async_trait::async_trait]
impl<S: RuntimeServer + ImageServer> Transport for Local<S> {
    async fn version(&self, request: VersionRequest) -> Reply<VersionResponse> {
        self.call(
            |s| async move { RuntimeServer::version(&*s, tonic::Request::new(request)).await },
        )
        .await
    }

    async fn status(&self, request: StatusRequest) -> Reply<StatusResponse> {
        self.call(|s| async move { RuntimeServer::status(&*s, tonic::Request::new(request)).await })
            .await
    }

    async fn run_pod_sandbox(&self, request: RunPodSandboxRequest) -> Reply<RunPodSandboxResponse> {
        self.call(|s| async move {
            RuntimeServer::run_pod_sandbox(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        request: StopPodSandboxRequest,
    ) -> Reply<StopPodSandboxResponse> {
        self.call(|s| async move {
            RuntimeServer::stop_pod_sandbox(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        request: RemovePodSandboxRequest,
    ) -> Reply<RemovePodSandboxResponse> {
        self.call(|s| async move {
            RuntimeServer::remove_pod_sandbox(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn pod_sandbox_status(
        &self,
        request: PodSandboxStatusRequest,
    ) -> Reply<PodSandboxStatusResponse> {
        self.call(|s| async move {
            RuntimeServer::pod_sandbox_status(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn list_pod_sandbox(
        &self,
        request: ListPodSandboxRequest,
    ) -> Reply<ListPodSandboxResponse> {
        self.call(|s| async move {
            RuntimeServer::list_pod_sandbox(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> Reply<CreateContainerResponse> {
        self.call(|s| async move {
            RuntimeServer::create_container(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn start_container(
        &self,
        request: StartContainerRequest,
    ) -> Reply<StartContainerResponse> {
        self.call(|s| async move {
            RuntimeServer::start_container(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn stop_container(&self, request: StopContainerRequest) -> Reply<StopContainerResponse> {
        self.call(|s| async move {
            RuntimeServer::stop_container(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn remove_container(
        &self,
        request: RemoveContainerRequest,
    ) -> Reply<RemoveContainerResponse> {
        self.call(|s| async move {
            RuntimeServer::remove_container(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn list_containers(
        &self,
        request: ListContainersRequest,
    ) -> Reply<ListContainersResponse> {
        self.call(|s| async move {
            RuntimeServer::list_containers(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn container_status(
        &self,
        request: ContainerStatusRequest,
    ) -> Reply<ContainerStatusResponse> {
        self.call(|s| async move {
            RuntimeServer::container_status(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn reopen_container_log(
        &self,
        request: ReopenContainerLogRequest,
    ) -> Reply<ReopenContainerLogResponse> {
        self.call(|s| async move {
            RuntimeServer::reopen_container_log(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn update_container_resources(
        &self,
        request: UpdateContainerResourcesRequest,
    ) -> Reply<UpdateContainerResourcesResponse> {
        self.call(|s| async move {
            RuntimeServer::update_container_resources(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn exec_sync(&self, request: ExecSyncRequest) -> Reply<ExecSyncResponse> {
        self.call(
            |s| async move { RuntimeServer::exec_sync(&*s, tonic::Request::new(request)).await },
        )
        .await
    }

    async fn exec(&self, request: ExecRequest) -> Reply<ExecResponse> {
        self.call(|s| async move { RuntimeServer::exec(&*s, tonic::Request::new(request)).await })
            .await
    }

    async fn attach(&self, request: AttachRequest) -> Reply<AttachResponse> {
        self.call(|s| async move { RuntimeServer::attach(&*s, tonic::Request::new(request)).await })
            .await
    }

    async fn port_forward(&self, request: PortForwardRequest) -> Reply<PortForwardResponse> {
        self.call(|s| async move {
            RuntimeServer::port_forward(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn list_container_stats(
        &self,
        request: ListContainerStatsRequest,
    ) -> Reply<ListContainerStatsResponse> {
        self.call(|s| async move {
            RuntimeServer::list_container_stats(&*s, tonic::Request::new(request)).await
        })
        .await
    }

    async fn get_container_events(&self, request: GetEventsRequest) -> Reply<EventStream> {
        self.call(|s| async move {
            let reply =
                RuntimeServer::get_container_events(&*s, tonic::Request::new(request)).await?;
            Ok(reply.map(StreamExt::boxed))
        })
        .await
    }

    async fn image_status(&self, request: ImageStatusRequest) -> Reply<ImageStatusResponse> {
        self.call(
            |s| async move { ImageServer::image_status(&*s, tonic::Request::new(request)).await },
        )
        .await
    }

    async fn pull_image(&self, request: PullImageRequest) -> Reply<PullImageResponse> {
        self.call(
            |s| async move { ImageServer::pull_image(&*s, tonic::Request::new(request)).await },
        )
        .await
    }

    async fn list_images(&self, request: ListImagesRequest) -> Reply<ListImagesResponse> {
        self.call(
            |s| async move { ImageServer::list_images(&*s, tonic::Request::new(request)).await },
        )
        .await
    }

    async fn remove_image(&self, request: RemoveImageRequest) -> Reply<RemoveImageResponse> {
        self.call(
            |s| async move { ImageServer::remove_image(&*s, tonic::Request::new(request)).await },
        )
        .await
    }

    async fn image_fs_info(&self, request: ImageFsInfoRequest) -> Reply<ImageFsInfoResponse> {
        self.call(
            |s| async move { ImageServer::image_fs_info(&*s, tonic::Request::new(request)).await },
        )
        .await
    }
}

#[cfg(test)]
mod tests;
