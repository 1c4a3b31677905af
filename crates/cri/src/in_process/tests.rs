//! [`InProcess`] against a small scripted service implementing the CRI tonic server traits.

use super::InProcess;
use crate::api::image_service_server::ImageService as ImageServer;
use crate::api::runtime_service_server::RuntimeService as RuntimeServer;
use crate::api::*;
use crate::{CriError, ImageService, RuntimeService};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};

const TIMEOUT: Duration = Duration::from_secs(2);

/// What the scripted service saw and finished, shared with the test.
#[derive(Default, Clone)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Scripted {
    log: Log,
}

/// Implements a CRI server trait: the listed RPCs answer UNIMPLEMENTED, the others are given.
macro_rules! server {
    (impl $service:ident { unimplemented: [$($rpc:ident($req:ident) -> $resp:ident),* $(,)?] $($given:tt)* }) => {
        #[async_trait::async_trait]
        impl $service for Scripted {
            $(async fn $rpc(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                Err(Status::unimplemented(stringify!($rpc)))
            })*
            $($given)*
        }
    };
}

server!(impl RuntimeServer {
    unimplemented: [
        status(StatusRequest) -> StatusResponse,
        stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse,
        remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse,
        list_pod_sandbox(ListPodSandboxRequest) -> ListPodSandboxResponse,
        create_container(CreateContainerRequest) -> CreateContainerResponse,
        start_container(StartContainerRequest) -> StartContainerResponse,
        list_containers(ListContainersRequest) -> ListContainersResponse,
        update_container_resources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse,
        reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse,
        exec_sync(ExecSyncRequest) -> ExecSyncResponse,
        exec(ExecRequest) -> ExecResponse,
        attach(AttachRequest) -> AttachResponse,
        port_forward(PortForwardRequest) -> PortForwardResponse,
        container_stats(ContainerStatsRequest) -> ContainerStatsResponse,
        list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse,
        pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse,
        list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse,
        update_runtime_config(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse,
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse,
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse,
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse,
        runtime_config(RuntimeConfigRequest) -> RuntimeConfigResponse,
    ]

    type GetContainerEventsStream = BoxStream<'static, Result<ContainerEventResponse, Status>>;

    async fn version(&self, _: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            runtime_name: "scripted".into(),
            ..Default::default()
        }))
    }

    /// The sandbox id is the pod name and the handler; a pod named "slow" takes 10 s.
    async fn run_pod_sandbox(
        &self,
        request: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        let request = request.into_inner();
        let name = request.config.and_then(|c| c.metadata).map(|m| m.name).unwrap_or_default();
        if name == "slow" {
            tokio::time::sleep(Duration::from_secs(10)).await;
            self.log.push("slow sandbox finished".into());
        }
        Ok(Response::new(RunPodSandboxResponse {
            pod_sandbox_id: format!("{name}/{}", request.runtime_handler),
        }))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        Err(Status::not_found(format!(
            "an error occurred when try to find sandbox {:?}: not found",
            request.into_inner().pod_sandbox_id
        )))
    }

    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        let request = request.into_inner();
        self.log.push(format!("stop {} after {}s", request.container_id, request.timeout));
        Ok(Response::new(StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        _: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        Err(Status::failed_precondition("container is running"))
    }

    /// A reply without a status breaks the CRI contract.
    async fn container_status(
        &self,
        _: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        Ok(Response::new(ContainerStatusResponse::default()))
    }

    async fn get_container_events(
        &self,
        _: Request<GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        let event = ContainerEventResponse {
            container_id: "c1".into(),
            ..Default::default()
        };
        let items = vec![Ok(event), Err(Status::unavailable("runtime going away"))];
        Ok(Response::new(futures::stream::iter(items).boxed()))
    }
});

server!(impl ImageServer {
    unimplemented: [
        list_images(ListImagesRequest) -> ListImagesResponse,
        remove_image(RemoveImageRequest) -> RemoveImageResponse,
        image_fs_info(ImageFsInfoRequest) -> ImageFsInfoResponse,
    ]

    /// Only "busybox" is present.
    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let name = request.into_inner().image.map(|i| i.image).unwrap_or_default();
        let image = (name == "busybox").then(|| Image {
            id: "sha256:b0".into(),
            repo_tags: vec![name],
            ..Default::default()
        });
        Ok(Response::new(ImageStatusResponse { image, ..Default::default() }))
    }

    async fn pull_image(
        &self,
        _: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        panic!("the runtime's pull crashed");
    }
});

fn runtime() -> (InProcess<Scripted>, Log) {
    let log = Log::default();
    let runtime = InProcess::new(Scripted { log: log.clone() }, TIMEOUT);
    (runtime, log)
}

fn sandbox(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn image(name: &str) -> ImageSpec {
    ImageSpec {
        image: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn requests_reach_the_service_and_replies_come_back() {
    let (runtime, log) = runtime();
    assert_eq!(runtime.version().await.unwrap().runtime_name, "scripted");
    let id = runtime
        .run_pod_sandbox(sandbox("web"), "runc")
        .await
        .unwrap();
    assert_eq!(id, "web/runc");
    runtime
        .stop_container("c1", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(log.entries(), ["stop c1 after 30s"]);
    let found = runtime
        .image_status(&image("busybox"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "sha256:b0");
    assert!(
        runtime
            .image_status(&image("nginx"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn statuses_map_as_over_grpc() {
    let (runtime, _) = runtime();
    let missing = runtime.pod_sandbox_status("gone").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
    assert!(
        missing.to_string().contains("PodSandboxStatus: not found"),
        "{missing}"
    );
    let unimplemented = runtime
        .exec_sync("c1", vec!["true".into()], TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(unimplemented, CriError::Unimplemented { rpc: "ExecSync" }),
        "{unimplemented:?}"
    );
    match runtime.remove_container("c1").await.unwrap_err() {
        CriError::Rpc { rpc, code, message } => {
            assert_eq!(
                (rpc, code),
                ("RemoveContainer", tonic::Code::FailedPrecondition)
            );
            assert_eq!(message, "container is running");
        }
        other => panic!("{other:?}"),
    }
    match runtime.container_status("c1").await.unwrap_err() {
        CriError::Rpc { code, message, .. } => {
            assert_eq!(code, tonic::Code::Internal);
            assert!(message.contains("no status"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_panic_in_the_runtime_is_an_internal_error_of_the_call() {
    let (runtime, _) = runtime();
    match runtime
        .pull_image(&image("busybox"), None, None)
        .await
        .unwrap_err()
    {
        CriError::Rpc { rpc, code, .. } => {
            assert_eq!((rpc, code), ("PullImage", tonic::Code::Internal));
        }
        other => panic!("{other:?}"),
    }
    // The runtime answers on.
    assert_eq!(runtime.version().await.unwrap().runtime_name, "scripted");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_ends_the_wait_but_not_the_runtimes_work() {
    let (runtime, log) = runtime();
    // RunPodSandbox has twice the request timeout.
    let err = runtime
        .run_pod_sandbox(sandbox("slow"), "")
        .await
        .unwrap_err();
    assert!(
        matches!(err, CriError::Timeout { rpc: "RunPodSandbox", timeout } if timeout == TIMEOUT * 2),
        "{err:?}"
    );
    assert!(log.entries().is_empty());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(log.entries(), ["slow sandbox finished"]);
}

#[tokio::test]
async fn container_events_stream_with_their_failures_mapped() {
    let (runtime, _) = runtime();
    let mut events = runtime.container_events().await.unwrap();
    assert_eq!(events.next().await.unwrap().unwrap().container_id, "c1");
    match events.next().await.unwrap().unwrap_err() {
        CriError::Rpc { rpc, code, .. } => {
            assert_eq!(
                (rpc, code),
                ("GetContainerEvents", tonic::Code::Unavailable)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(events.next().await.is_none());
}
