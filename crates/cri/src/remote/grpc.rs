//! The [`Transport`] over a gRPC connection: tonic's generated clients.

use crate::api::image_service_client::ImageServiceClient;
use crate::api::runtime_service_client::RuntimeServiceClient;
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
use crate::transport::{EventStream, Reply, Transport};
use futures::StreamExt;
use tonic::transport::Channel;

/// The runtime and image service clients; they may share one channel.
#[derive(Clone, Debug)]
pub struct Grpc {
    pub(super) runtime: RuntimeServiceClient<Channel>,
    pub(super) image: ImageServiceClient<Channel>,
}

// tonic's clients take `&mut self`; a clone shares the channel, so each call gets its own.
#[async_trait::async_trait]
impl Transport for Grpc {
    async fn version(&self, request: VersionRequest) -> Reply<VersionResponse> {
        self.runtime.clone().version(request).await
    }

    async fn status(&self, request: StatusRequest) -> Reply<StatusResponse> {
        self.runtime.clone().status(request).await
    }

    async fn run_pod_sandbox(&self, request: RunPodSandboxRequest) -> Reply<RunPodSandboxResponse> {
        self.runtime.clone().run_pod_sandbox(request).await
    }

    async fn stop_pod_sandbox(
        &self,
        request: StopPodSandboxRequest,
    ) -> Reply<StopPodSandboxResponse> {
        self.runtime.clone().stop_pod_sandbox(request).await
    }

    async fn remove_pod_sandbox(
        &self,
        request: RemovePodSandboxRequest,
    ) -> Reply<RemovePodSandboxResponse> {
        self.runtime.clone().remove_pod_sandbox(request).await
    }

    async fn pod_sandbox_status(
        &self,
        request: PodSandboxStatusRequest,
    ) -> Reply<PodSandboxStatusResponse> {
        self.runtime.clone().pod_sandbox_status(request).await
    }

    async fn list_pod_sandbox(
        &self,
        request: ListPodSandboxRequest,
    ) -> Reply<ListPodSandboxResponse> {
        self.runtime.clone().list_pod_sandbox(request).await
    }

    async fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> Reply<CreateContainerResponse> {
        self.runtime.clone().create_container(request).await
    }

    async fn start_container(
        &self,
        request: StartContainerRequest,
    ) -> Reply<StartContainerResponse> {
        self.runtime.clone().start_container(request).await
    }

    async fn stop_container(&self, request: StopContainerRequest) -> Reply<StopContainerResponse> {
        self.runtime.clone().stop_container(request).await
    }

    async fn remove_container(
        &self,
        request: RemoveContainerRequest,
    ) -> Reply<RemoveContainerResponse> {
        self.runtime.clone().remove_container(request).await
    }

    async fn list_containers(
        &self,
        request: ListContainersRequest,
    ) -> Reply<ListContainersResponse> {
        self.runtime.clone().list_containers(request).await
    }

    async fn container_status(
        &self,
        request: ContainerStatusRequest,
    ) -> Reply<ContainerStatusResponse> {
        self.runtime.clone().container_status(request).await
    }

    async fn reopen_container_log(
        &self,
        request: ReopenContainerLogRequest,
    ) -> Reply<ReopenContainerLogResponse> {
        self.runtime.clone().reopen_container_log(request).await
    }

    async fn update_container_resources(
        &self,
        request: UpdateContainerResourcesRequest,
    ) -> Reply<UpdateContainerResourcesResponse> {
        self.runtime
            .clone()
            .update_container_resources(request)
            .await
    }

    async fn exec_sync(&self, request: ExecSyncRequest) -> Reply<ExecSyncResponse> {
        self.runtime.clone().exec_sync(request).await
    }

    async fn exec(&self, request: ExecRequest) -> Reply<ExecResponse> {
        self.runtime.clone().exec(request).await
    }

    async fn attach(&self, request: AttachRequest) -> Reply<AttachResponse> {
        self.runtime.clone().attach(request).await
    }

    async fn port_forward(&self, request: PortForwardRequest) -> Reply<PortForwardResponse> {
        self.runtime.clone().port_forward(request).await
    }

    async fn list_container_stats(
        &self,
        request: ListContainerStatsRequest,
    ) -> Reply<ListContainerStatsResponse> {
        self.runtime.clone().list_container_stats(request).await
    }

    async fn get_container_events(&self, request: GetEventsRequest) -> Reply<EventStream> {
        let reply = self.runtime.clone().get_container_events(request).await?;
        Ok(reply.map(StreamExt::boxed))
    }

    async fn image_status(&self, request: ImageStatusRequest) -> Reply<ImageStatusResponse> {
        self.image.clone().image_status(request).await
    }

    async fn pull_image(&self, request: PullImageRequest) -> Reply<PullImageResponse> {
        self.image.clone().pull_image(request).await
    }

    async fn list_images(&self, request: ListImagesRequest) -> Reply<ListImagesResponse> {
        self.image.clone().list_images(request).await
    }

    async fn remove_image(&self, request: RemoveImageRequest) -> Reply<RemoveImageResponse> {
        self.image.clone().remove_image(request).await
    }

    async fn image_fs_info(&self, request: ImageFsInfoRequest) -> Reply<ImageFsInfoResponse> {
        self.image.clone().image_fs_info(request).await
    }
}
