//! The pod-resources API (upstream pkg/kubelet/apis/podresources) on
//! `<root dir>/pod-resources/kubelet.sock`: v1 List, Get and GetAllocatableResources, and the
//! v1alpha1 List, for monitoring agents asking which devices each container holds. Only active
//! (non-terminal) pods are listed.

mod convert;

use crate::cm::cpumanager::CpuManager;
use crate::devicemanager::DeviceManager;
use crate::pod_manager::PodManager;
use crate::status::StatusManager;
use crate::status::generate::{FAILED, SUCCEEDED};
use k8s_openapi::api::core::v1::Pod;
use kubelet_plugin_apis::podresources::{v1, v1alpha1};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

pub const POD_RESOURCES_DIR: &str = "pod-resources";
pub const SOCKET: &str = "kubelet.sock";

/// The pods the kubelet runs now, terminal ones left out.
pub type ActivePods = Arc<dyn Fn() -> Vec<Pod> + Send + Sync>;

/// The pods of `pods` whose status is not Succeeded or Failed (refused pods are Failed).
pub fn active_pods(pods: PodManager, status: Arc<StatusManager>) -> ActivePods {
    Arc::new(move || {
        pods.pods()
            .into_iter()
            .filter(|p| {
                let uid = p.metadata.uid.as_deref().unwrap_or_default();
                let phase = status.get(uid).and_then(|s| s.phase);
                !matches!(phase.as_deref(), Some(SUCCEEDED) | Some(FAILED))
            })
            .collect()
    })
}

#[derive(Debug, Error)]
#[error("cannot serve the pod-resources API on {path}: {source}")]
pub struct ServeError {
    path: PathBuf,
    source: std::io::Error,
}

#[derive(Clone)]
struct Lister {
    pods: ActivePods,
    devices: DeviceManager,
    cpus: Arc<CpuManager>,
}

impl Lister {
    fn pod(&self, pod: &Pod) -> v1::PodResources {
        convert::pod_resources(pod, &self.devices, &self.cpus)
    }
}

#[tonic::async_trait]
impl v1::pod_resources_lister_server::PodResourcesLister for Lister {
    async fn list(
        &self,
        _: Request<v1::ListPodResourcesRequest>,
    ) -> Result<Response<v1::ListPodResourcesResponse>, Status> {
        let pod_resources = (self.pods)().iter().map(|p| self.pod(p)).collect();
        Ok(Response::new(v1::ListPodResourcesResponse {
            pod_resources,
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<v1::AllocatableResourcesRequest>,
    ) -> Result<Response<v1::AllocatableResourcesResponse>, Status> {
        Ok(Response::new(v1::AllocatableResourcesResponse {
            devices: convert::devices(self.devices.allocatable_devices()),
            cpu_ids: Vec::new(),
            memory: Vec::new(),
        }))
    }

    async fn get(
        &self,
        request: Request<v1::GetPodResourcesRequest>,
    ) -> Result<Response<v1::GetPodResourcesResponse>, Status> {
        let r = request.into_inner();
        let pod = (self.pods)().into_iter().find(|p| {
            p.metadata.name.as_deref() == Some(r.pod_name.as_str())
                && p.metadata.namespace.as_deref().unwrap_or("default") == r.pod_namespace
        });
        let Some(pod) = pod else {
            return Err(Status::not_found(format!(
                "pod {} in namespace {} not found",
                r.pod_name, r.pod_namespace
            )));
        };
        Ok(Response::new(v1::GetPodResourcesResponse {
            pod_resources: Some(self.pod(&pod)),
        }))
    }
}

#[tonic::async_trait]
impl v1alpha1::pod_resources_lister_server::PodResourcesLister for Lister {
    async fn list(
        &self,
        _: Request<v1alpha1::ListPodResourcesRequest>,
    ) -> Result<Response<v1alpha1::ListPodResourcesResponse>, Status> {
        let pod_resources = (self.pods)()
            .iter()
            .map(|p| convert::v1alpha1(self.pod(p)))
            .collect();
        Ok(Response::new(v1alpha1::ListPodResourcesResponse {
            pod_resources,
        }))
    }
}

/// Binds the socket under `root_dir` (replacing a stale one) and serves both versions.
pub fn serve(
    root_dir: &Path,
    pods: ActivePods,
    devices: DeviceManager,
    cpus: Arc<CpuManager>,
) -> Result<(), ServeError> {
    let dir = root_dir.join(POD_RESOURCES_DIR);
    let path = dir.join(SOCKET);
    let err = |source| ServeError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(&path).map_err(err)?;
    let lister = Lister {
        pods,
        devices,
        cpus,
    };
    let server = tonic::transport::Server::builder()
        .add_service(v1::pod_resources_lister_server::PodResourcesListerServer::new(lister.clone()))
        .add_service(v1alpha1::pod_resources_lister_server::PodResourcesListerServer::new(lister))
        .serve_with_incoming(UnixListenerStream::new(listener));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("pod-resources server stopped: {e}");
        }
    });
    Ok(())
}
