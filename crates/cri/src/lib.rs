//! The container runtime seam: the CRI v1 RuntimeService and ImageService behind one trait.
//!
//! Nothing else in the kubelet talks to containers. [`remote::RemoteRuntime`] speaks CRI gRPC over
//! a unix socket (containerd, CRI-O, the built-in runtime served alone);
//! [`in_process::InProcess`] calls a runtime's CRI tonic services in this process (the built-in
//! runtime embedded in the kubelet); both are a [`client::CriClient`] over a
//! [`transport::Transport`]. [`fake::FakeRuntime`] is an in-memory runtime for unit tests.
//! The request and response messages are the generated CRI types, re-exported as [`api`].

pub mod client;
pub mod error;
pub mod fake;
pub mod in_process;
pub mod instrumented;
pub mod remote;
pub mod transport;

pub use error::CriError;
pub use k8s_cri::v1 as api;

use api::{
    AttachRequest, AuthConfig, Container, ContainerConfig, ContainerEventResponse, ContainerFilter,
    ContainerStats, ContainerStatsFilter, ContainerStatus, ExecRequest, ExecSyncResponse,
    FilesystemUsage, Image, ImageSpec, LinuxContainerResources, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxStatus, PortForwardRequest, StatusResponse, VersionResponse,
};
use futures::stream::BoxStream;
use std::time::Duration;

pub type Result<T> = std::result::Result<T, CriError>;

/// The CRI RuntimeService, as the kubelet uses it.
#[async_trait::async_trait]
pub trait RuntimeService: Send + Sync + 'static {
    async fn version(&self) -> Result<VersionResponse>;
    async fn status(&self) -> Result<StatusResponse>;

    /// Returns the new sandbox id.
    async fn run_pod_sandbox(
        &self,
        config: PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String>;
    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<()>;
    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<()>;
    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<PodSandboxStatus>;
    async fn list_pod_sandbox(&self, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>>;

    /// Returns the new container id.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String>;
    async fn start_container(&self, container_id: &str) -> Result<()>;
    /// `timeout` is the grace period before the runtime escalates to SIGKILL.
    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<()>;
    async fn remove_container(&self, container_id: &str) -> Result<()>;
    async fn list_containers(&self, filter: Option<ContainerFilter>) -> Result<Vec<Container>>;
    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus>;
    async fn reopen_container_log(&self, container_id: &str) -> Result<()>;
    /// Changes a running container's cgroup resources; the runtime keeps what is left unset.
    async fn update_container_resources(
        &self,
        container_id: &str,
        linux: LinuxContainerResources,
    ) -> Result<()>;
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResponse>;
    async fn list_container_stats(
        &self,
        filter: Option<ContainerStatsFilter>,
    ) -> Result<Vec<ContainerStats>>;

    /// Exec, Attach and PortForward answer the URL of the runtime's streaming server that serves
    /// the session; the kubelet proxies the client's upgraded connection there. A runtime
    /// without a streaming server answers [`CriError::Unimplemented`].
    async fn exec(&self, _request: ExecRequest) -> Result<String> {
        Err(CriError::Unimplemented { rpc: "Exec" })
    }
    async fn attach(&self, _request: AttachRequest) -> Result<String> {
        Err(CriError::Unimplemented { rpc: "Attach" })
    }
    async fn port_forward(&self, _request: PortForwardRequest) -> Result<String> {
        Err(CriError::Unimplemented { rpc: "PortForward" })
    }

    /// The runtime's container event stream. Runtimes without it (containerd 1.6) answer
    /// [`CriError::Unimplemented`], and the caller falls back to relisting.
    async fn container_events(&self) -> Result<BoxStream<'static, Result<ContainerEventResponse>>>;
}

/// The CRI ImageService, as the kubelet uses it.
#[async_trait::async_trait]
pub trait ImageService: Send + Sync + 'static {
    /// `None` when the image is not present.
    async fn image_status(&self, image: &ImageSpec) -> Result<Option<Image>>;
    /// Returns the image reference the runtime resolved (usually the image id).
    async fn pull_image(
        &self,
        image: &ImageSpec,
        auth: Option<AuthConfig>,
        sandbox_config: Option<PodSandboxConfig>,
    ) -> Result<String>;
    async fn list_images(&self) -> Result<Vec<Image>>;
    async fn remove_image(&self, image: &ImageSpec) -> Result<()>;
    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>>;
}

/// A whole runtime: what the kubelet holds as `Arc<dyn Runtime>`.
pub trait Runtime: RuntimeService + ImageService {}
impl<T: RuntimeService + ImageService> Runtime for T {}
