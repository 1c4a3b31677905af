//! The CRI v1 RuntimeService and ImageService on [`Runtime`]: the kubelet calls these traits in
//! process, [`crate::serve`] puts them on a socket. Each method checks its request and hands it
//! to the sandbox, container, stats or image code.

use crate::{Runtime, ServiceError, blocking, container, sandbox, stats, streaming};
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use std::collections::HashMap;
use std::pin::Pin;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

const RUNTIME_NAME: &str = "kubelet-rs";
const RUNTIME_API_VERSION: &str = "v1";
/// The CRI version Version reports (the kubelet only checks that it answers).
const KUBE_API_VERSION: &str = "0.1.0";

type Reply<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Reply<T> {
    Ok(Response::new(value))
}

fn streaming_error(error: runtime_streaming::RequestError) -> Status {
    use runtime_streaming::RequestError;
    match error {
        RequestError::InvalidArgument(_) => Status::invalid_argument(error.to_string()),
        RequestError::TooManyRequests => Status::resource_exhausted(error.to_string()),
        RequestError::NotStarted => Status::unavailable(error.to_string()),
        RequestError::Internal(_) => Status::internal(error.to_string()),
    }
}

impl Runtime {
    fn status_response(&self, verbose: bool) -> StatusResponse {
        let inner = &self.inner;
        let network = match inner.cni.status() {
            Ok(()) => RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: true,
                ..Default::default()
            },
            Err(message) => RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: format!("Network plugin returns error: {message}"),
            },
        };
        // The default handler is listed under "" too, as the kubelet looks it up by that name.
        let runtime_handlers = std::iter::once(String::new())
            .chain(inner.handlers.names())
            .map(|name| RuntimeHandler {
                features: Some(RuntimeHandlerFeatures {
                    recursive_read_only_mounts: inner.handlers.recursive_read_only(&name),
                    user_namespaces: false,
                }),
                name,
            })
            .collect();
        let mut info = HashMap::new();
        if verbose {
            let config = serde_json::json!({
                "root": inner.options.root,
                "state": inner.options.state,
                "cniConfDir": inner.options.cni_conf_dir,
                "cniBinDirs": inner.options.cni_bin_dirs,
                "podCIDR": inner.cni.pod_cidr(),
                "defaultRuntimeHandler": inner.handlers.default_handler(),
                "handlers": inner.handlers.names(),
            });
            info.insert("config".to_string(), config.to_string());
        }
        StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![
                    RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        ..Default::default()
                    },
                    network,
                ],
            }),
            info,
            runtime_handlers,
            features: Some(RuntimeFeatures {
                supplemental_groups_policy: false,
            }),
        }
    }
}

fn image_ref(spec: Option<&ImageSpec>) -> Result<String, Status> {
    spec.map(|s| s.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Status::invalid_argument("no image given"))
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(&self, _: Request<VersionRequest>) -> Reply<VersionResponse> {
        ok(VersionResponse {
            version: KUBE_API_VERSION.into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: RUNTIME_API_VERSION.into(),
        })
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<RunPodSandboxRequest>,
    ) -> Reply<RunPodSandboxResponse> {
        let r = r.into_inner();
        let config = r
            .config
            .ok_or_else(|| Status::invalid_argument("no sandbox config given"))?;
        let id = sandbox::run(&self.inner, config, r.runtime_handler).await?;
        ok(RunPodSandboxResponse { pod_sandbox_id: id })
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<StopPodSandboxRequest>,
    ) -> Reply<StopPodSandboxResponse> {
        sandbox::stop(&self.inner, &r.into_inner().pod_sandbox_id).await?;
        ok(StopPodSandboxResponse {})
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<RemovePodSandboxRequest>,
    ) -> Reply<RemovePodSandboxResponse> {
        sandbox::remove(&self.inner, &r.into_inner().pod_sandbox_id).await?;
        ok(RemovePodSandboxResponse {})
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<PodSandboxStatusRequest>,
    ) -> Reply<PodSandboxStatusResponse> {
        let r = r.into_inner();
        ok(sandbox::status(&self.inner, &r.pod_sandbox_id, r.verbose)?)
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<ListPodSandboxRequest>,
    ) -> Reply<ListPodSandboxResponse> {
        ok(ListPodSandboxResponse {
            items: sandbox::list(&self.inner, r.into_inner().filter.as_ref()),
        })
    }

    async fn create_container(
        &self,
        r: Request<CreateContainerRequest>,
    ) -> Reply<CreateContainerResponse> {
        let r = r.into_inner();
        let config = r
            .config
            .ok_or_else(|| Status::invalid_argument("no container config given"))?;
        let id = container::create(&self.inner, &r.pod_sandbox_id, config).await?;
        ok(CreateContainerResponse { container_id: id })
    }

    async fn start_container(
        &self,
        r: Request<StartContainerRequest>,
    ) -> Reply<StartContainerResponse> {
        container::start(&self.inner, &r.into_inner().container_id).await?;
        ok(StartContainerResponse {})
    }

    async fn stop_container(
        &self,
        r: Request<StopContainerRequest>,
    ) -> Reply<StopContainerResponse> {
        let r = r.into_inner();
        container::stop(&self.inner, &r.container_id, r.timeout).await?;
        ok(StopContainerResponse {})
    }

    async fn remove_container(
        &self,
        r: Request<RemoveContainerRequest>,
    ) -> Reply<RemoveContainerResponse> {
        container::remove(&self.inner, &r.into_inner().container_id).await?;
        ok(RemoveContainerResponse {})
    }

    async fn list_containers(
        &self,
        r: Request<ListContainersRequest>,
    ) -> Reply<ListContainersResponse> {
        ok(ListContainersResponse {
            containers: container::list(&self.inner, r.into_inner().filter.as_ref()),
        })
    }

    async fn container_status(
        &self,
        r: Request<ContainerStatusRequest>,
    ) -> Reply<ContainerStatusResponse> {
        let r = r.into_inner();
        ok(container::status(&self.inner, &r.container_id, r.verbose)?)
    }

    async fn update_container_resources(
        &self,
        r: Request<UpdateContainerResourcesRequest>,
    ) -> Reply<UpdateContainerResourcesResponse> {
        let r = r.into_inner();
        let linux = r
            .linux
            .ok_or_else(|| Status::invalid_argument("no linux resources given"))?;
        container::update_resources(&self.inner, &r.container_id, linux).await?;
        ok(UpdateContainerResourcesResponse {})
    }

    async fn reopen_container_log(
        &self,
        r: Request<ReopenContainerLogRequest>,
    ) -> Reply<ReopenContainerLogResponse> {
        container::reopen_log(&self.inner, &r.into_inner().container_id).await?;
        ok(ReopenContainerLogResponse {})
    }

    async fn exec_sync(&self, r: Request<ExecSyncRequest>) -> Reply<ExecSyncResponse> {
        let r = r.into_inner();
        ok(container::exec_sync(&self.inner, &r.container_id, r.cmd, r.timeout).await?)
    }

    // The URLs are handed out only for what can stream now, as containerd does; an empty id is
    // left to the streaming server's own validation.
    async fn exec(&self, r: Request<ExecRequest>) -> Reply<ExecResponse> {
        let r = r.into_inner();
        if !r.container_id.is_empty() {
            container::running(&self.inner, &r.container_id)?;
        }
        ok(self.inner.streaming.get_exec(&r).map_err(streaming_error)?)
    }

    async fn attach(&self, r: Request<AttachRequest>) -> Reply<AttachResponse> {
        let r = r.into_inner();
        if !r.container_id.is_empty() {
            container::running(&self.inner, &r.container_id)?;
        }
        ok(self
            .inner
            .streaming
            .get_attach(&r)
            .map_err(streaming_error)?)
    }

    async fn port_forward(&self, r: Request<PortForwardRequest>) -> Reply<PortForwardResponse> {
        let r = r.into_inner();
        if !r.pod_sandbox_id.is_empty() {
            streaming::ready_sandbox(&self.inner, &r.pod_sandbox_id)?;
        }
        ok(self
            .inner
            .streaming
            .get_port_forward(&r)
            .map_err(streaming_error)?)
    }

    async fn container_stats(
        &self,
        r: Request<ContainerStatsRequest>,
    ) -> Reply<ContainerStatsResponse> {
        let inner = self.inner.clone();
        let id = r.into_inner().container_id;
        let stats = blocking(move || stats::container(&inner, &id)).await?;
        ok(ContainerStatsResponse { stats: Some(stats) })
    }

    async fn list_container_stats(
        &self,
        r: Request<ListContainerStatsRequest>,
    ) -> Reply<ListContainerStatsResponse> {
        let inner = self.inner.clone();
        let filter = r.into_inner().filter;
        let stats = blocking(move || Ok(stats::containers(&inner, filter.as_ref()))).await?;
        ok(ListContainerStatsResponse { stats })
    }

    async fn pod_sandbox_stats(
        &self,
        r: Request<PodSandboxStatsRequest>,
    ) -> Reply<PodSandboxStatsResponse> {
        let inner = self.inner.clone();
        let id = r.into_inner().pod_sandbox_id;
        let stats = blocking(move || stats::pod(&inner, &id)).await?;
        ok(PodSandboxStatsResponse { stats: Some(stats) })
    }

    async fn list_pod_sandbox_stats(
        &self,
        r: Request<ListPodSandboxStatsRequest>,
    ) -> Reply<ListPodSandboxStatsResponse> {
        let inner = self.inner.clone();
        let filter = r.into_inner().filter;
        let stats = blocking(move || Ok(stats::pods(&inner, filter.as_ref()))).await?;
        ok(ListPodSandboxStatsResponse { stats })
    }

    async fn update_runtime_config(
        &self,
        r: Request<UpdateRuntimeConfigRequest>,
    ) -> Reply<UpdateRuntimeConfigResponse> {
        if let Some(network) = r.into_inner().runtime_config.and_then(|c| c.network_config) {
            self.inner.cni.set_pod_cidr(&network.pod_cidr);
        }
        ok(UpdateRuntimeConfigResponse {})
    }

    async fn status(&self, r: Request<StatusRequest>) -> Reply<StatusResponse> {
        ok(self.status_response(r.into_inner().verbose))
    }

    async fn checkpoint_container(
        &self,
        _: Request<CheckpointContainerRequest>,
    ) -> Reply<CheckpointContainerResponse> {
        Err(Status::unimplemented(
            "CheckpointContainer is not supported",
        ))
    }

    type GetContainerEventsStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<ContainerEventResponse, Status>> + Send>>;

    async fn get_container_events(
        &self,
        _: Request<GetEventsRequest>,
    ) -> Reply<Self::GetContainerEventsStream> {
        // A subscriber that fell behind has lost events: its stream ends with ABORTED, so it
        // relists and subscribes again rather than go on with a state it cannot trust.
        let receiver = self.inner.events.subscribe();
        let stream = futures::stream::unfold(Some(receiver), |receiver| async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Ok(event) => Some((Ok(event), Some(receiver))),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a container event subscriber fell behind");
                    let status = Status::aborted(format!(
                        "the subscriber fell {missed} container events behind: relist and subscribe again"
                    ));
                    Some((Err(status), None))
                }
                Err(RecvError::Closed) => None,
            }
        });
        ok(Box::pin(stream))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<ListMetricDescriptorsRequest>,
    ) -> Reply<ListMetricDescriptorsResponse> {
        Err(Status::unimplemented(
            "ListMetricDescriptors is not supported",
        ))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<ListPodSandboxMetricsRequest>,
    ) -> Reply<ListPodSandboxMetricsResponse> {
        Err(Status::unimplemented(
            "ListPodSandboxMetrics is not supported",
        ))
    }

    async fn runtime_config(
        &self,
        _: Request<RuntimeConfigRequest>,
    ) -> Reply<RuntimeConfigResponse> {
        let driver = match self.inner.options.cgroup_driver {
            crate::CgroupDriver::Cgroupfs => k8s_cri::v1::CgroupDriver::Cgroupfs,
            crate::CgroupDriver::Systemd => k8s_cri::v1::CgroupDriver::Systemd,
        };
        ok(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration {
                cgroup_driver: driver as i32,
            }),
        })
    }
}

#[tonic::async_trait]
impl ImageService for Runtime {
    async fn list_images(&self, r: Request<ListImagesRequest>) -> Reply<ListImagesResponse> {
        let wanted = r
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|i| i.image)
            .filter(|i| !i.is_empty());
        let images = match wanted {
            Some(reference) => self.inner.images.get(&reference).into_iter().collect(),
            None => self.inner.images.list(),
        };
        ok(ListImagesResponse {
            images: images.iter().map(|i| i.to_cri()).collect(),
        })
    }

    async fn image_status(&self, r: Request<ImageStatusRequest>) -> Reply<ImageStatusResponse> {
        let r = r.into_inner();
        let reference = image_ref(r.image.as_ref())?;
        // A missing image is an empty answer, not an error (the kubelet then pulls).
        let Some(image) = self.inner.images.get(&reference) else {
            return ok(ImageStatusResponse::default());
        };
        let mut info = HashMap::new();
        if r.verbose {
            let config = serde_json::to_string(&image.config)
                .map_err(|e| ServiceError::Internal(format!("encoding the image config: {e}")))?;
            info.insert("info".to_string(), format!("{{\"imageSpec\":{config}}}"));
        }
        ok(ImageStatusResponse {
            image: Some(image.to_cri()),
            info,
        })
    }

    async fn pull_image(&self, r: Request<PullImageRequest>) -> Reply<PullImageResponse> {
        let r = r.into_inner();
        let reference = image_ref(r.image.as_ref())?;
        let span = tracing::info_span!("pull_image", image = %reference);
        let image = tracing::Instrument::instrument(
            self.inner.images.pull(&reference, r.auth.as_ref()),
            span,
        )
        .await
        .map_err(ServiceError::from)?;
        ok(PullImageResponse {
            image_ref: image.id,
        })
    }

    async fn remove_image(&self, r: Request<RemoveImageRequest>) -> Reply<RemoveImageResponse> {
        let reference = image_ref(r.into_inner().image.as_ref())?;
        self.inner
            .images
            .remove(&reference)
            .map_err(ServiceError::from)?;
        ok(RemoveImageResponse {})
    }

    async fn image_fs_info(&self, _: Request<ImageFsInfoRequest>) -> Reply<ImageFsInfoResponse> {
        let images = self.inner.images.clone();
        let usage = blocking(move || Ok(images.fs_info()?)).await?;
        ok(ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        })
    }
}
