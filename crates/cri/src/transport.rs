//! How CRI requests reach a runtime: over gRPC ([`crate::remote`]) or by calling a runtime's
//! tonic service in process ([`crate::in_process`]).
//!
//! [`CriClient`](crate::client::CriClient) builds the requests, applies the deadlines and maps
//! the replies and failures once, for every transport, so a runtime behaves the same to the
//! kubelet however it is reached.

use crate::api::{
    AttachRequest, AttachResponse, ContainerEventResponse, ContainerStatusRequest,
    ContainerStatusResponse, CreateContainerRequest, CreateContainerResponse, ExecRequest,
    ExecResponse, ExecSyncRequest, ExecSyncResponse, GetEventsRequest, ImageFsInfoRequest,
    ImageFsInfoResponse, ImageStatusRequest, ImageStatusResponse, ListContainerStatsRequest,
    ListContainerStatsResponse, ListContainersRequest, ListContainersResponse, ListImagesRequest,
    ListImagesResponse, ListPodSandboxRequest, ListPodSandboxResponse, PodSandboxStatusRequest,
    PodSandboxStatusResponse, PortForwardRequest, PortForwardResponse, PullImageRequest,
    PullImageResponse, RemoveContainerRequest, RemoveContainerResponse, RemoveImageRequest,
    RemoveImageResponse, RemovePodSandboxRequest, RemovePodSandboxResponse,
    ReopenContainerLogRequest, ReopenContainerLogResponse, RunPodSandboxRequest,
    RunPodSandboxResponse, StartContainerRequest, StartContainerResponse, StatusRequest,
    StatusResponse, StopContainerRequest, StopContainerResponse, StopPodSandboxRequest,
    StopPodSandboxResponse, UpdateContainerResourcesRequest, UpdateContainerResourcesResponse,
    VersionRequest, VersionResponse,
};
use futures::stream::BoxStream;

/// A unary reply as tonic gives it, on either side of a connection.
pub type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

/// The GetContainerEvents stream.
pub type EventStream = BoxStream<'static, Result<ContainerEventResponse, tonic::Status>>;

/// The CRI RPCs the kubelet makes, request in, tonic reply out.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn version(&self, request: VersionRequest) -> Reply<VersionResponse>;
    async fn status(&self, request: StatusRequest) -> Reply<StatusResponse>;
    async fn run_pod_sandbox(&self, request: RunPodSandboxRequest) -> Reply<RunPodSandboxResponse>;
    async fn stop_pod_sandbox(
        &self,
        request: StopPodSandboxRequest,
    ) -> Reply<StopPodSandboxResponse>;
    async fn remove_pod_sandbox(
        &self,
        request: RemovePodSandboxRequest,
    ) -> Reply<RemovePodSandboxResponse>;
    async fn pod_sandbox_status(
        &self,
        request: PodSandboxStatusRequest,
    ) -> Reply<PodSandboxStatusResponse>;
    async fn list_pod_sandbox(
        &self,
        request: ListPodSandboxRequest,
    ) -> Reply<ListPodSandboxResponse>;
    async fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> Reply<CreateContainerResponse>;
    async fn start_container(
        &self,
        request: StartContainerRequest,
    ) -> Reply<StartContainerResponse>;
    async fn stop_container(&self, request: StopContainerRequest) -> Reply<StopContainerResponse>;
    async fn remove_container(
        &self,
        request: RemoveContainerRequest,
    ) -> Reply<RemoveContainerResponse>;
    async fn list_containers(
        &self,
        request: ListContainersRequest,
    ) -> Reply<ListContainersResponse>;
    async fn container_status(
        &self,
        request: ContainerStatusRequest,
    ) -> Reply<ContainerStatusResponse>;
    async fn reopen_container_log(
        &self,
        request: ReopenContainerLogRequest,
    ) -> Reply<ReopenContainerLogResponse>;
    async fn update_container_resources(
        &self,
        request: UpdateContainerResourcesRequest,
    ) -> Reply<UpdateContainerResourcesResponse>;
    async fn exec_sync(&self, request: ExecSyncRequest) -> Reply<ExecSyncResponse>;
    async fn exec(&self, request: ExecRequest) -> Reply<ExecResponse>;
    async fn attach(&self, request: AttachRequest) -> Reply<AttachResponse>;
    async fn port_forward(&self, request: PortForwardRequest) -> Reply<PortForwardResponse>;
    async fn list_container_stats(
        &self,
        request: ListContainerStatsRequest,
    ) -> Reply<ListContainerStatsResponse>;
    async fn get_container_events(&self, request: GetEventsRequest) -> Reply<EventStream>;

    async fn image_status(&self, request: ImageStatusRequest) -> Reply<ImageStatusResponse>;
    async fn pull_image(&self, request: PullImageRequest) -> Reply<PullImageResponse>;
    async fn list_images(&self, request: ListImagesRequest) -> Reply<ListImagesResponse>;
    async fn remove_image(&self, request: RemoveImageRequest) -> Reply<RemoveImageResponse>;
    async fn image_fs_info(&self, request: ImageFsInfoRequest) -> Reply<ImageFsInfoResponse>;
}
