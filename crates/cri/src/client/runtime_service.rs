//! [`RuntimeService`] over any [`Transport`].

use super::CriClient;
use super::call::{invalid_reply, status_error, with_deadline};
use crate::api::{
    AttachRequest, Container, ContainerConfig, ContainerEventResponse, ContainerFilter,
    ContainerStats, ContainerStatsFilter, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, ExecRequest, ExecSyncRequest, ExecSyncResponse, GetEventsRequest,
    LinuxContainerResources, ListContainerStatsRequest, ListContainersRequest,
    ListPodSandboxRequest, PodSandbox, PodSandboxConfig, PodSandboxFilter, PodSandboxStatus,
    PodSandboxStatusRequest, PortForwardRequest, RemoveContainerRequest, RemovePodSandboxRequest,
    ReopenContainerLogRequest, RunPodSandboxRequest, StartContainerRequest, StatusRequest,
    StatusResponse, StopContainerRequest, StopPodSandboxRequest, UpdateContainerResourcesRequest,
    VersionRequest, VersionResponse,
};
use crate::transport::Transport;
use crate::{Result, RuntimeService};
use futures::stream::{BoxStream, StreamExt};
use std::time::Duration;

/// CRI carries durations in whole seconds.
fn whole_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl<T: Transport> CriClient<T> {
    fn deadline(&self) -> Option<Duration> {
        Some(self.request_timeout)
    }
}

#[async_trait::async_trait]
impl<T: Transport> RuntimeService for CriClient<T> {
    async fn version(&self) -> Result<VersionResponse> {
        let request = VersionRequest {
            version: String::new(),
        };
        with_deadline("Version", self.deadline(), self.transport.version(request)).await
    }

    async fn status(&self) -> Result<StatusResponse> {
        let request = StatusRequest { verbose: false };
        with_deadline("Status", self.deadline(), self.transport.status(request)).await
    }

    async fn run_pod_sandbox(
        &self,
        config: PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let request = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_string(),
        };
        // Sandbox creation runs CNI and may pull the pause image: upstream allows twice the
        // ordinary deadline.
        let deadline = Some(self.request_timeout * 2);
        let reply = with_deadline(
            "RunPodSandbox",
            deadline,
            self.transport.run_pod_sandbox(request),
        )
        .await?;
        if reply.pod_sandbox_id.is_empty() {
            return Err(invalid_reply("RunPodSandbox", "empty pod sandbox id"));
        }
        Ok(reply.pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let request = StopPodSandboxRequest {
            pod_sandbox_id: sandbox_id.to_string(),
        };
        with_deadline(
            "StopPodSandbox",
            self.deadline(),
            self.transport.stop_pod_sandbox(request),
        )
        .await
        .map(drop)
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let request = RemovePodSandboxRequest {
            pod_sandbox_id: sandbox_id.to_string(),
        };
        with_deadline(
            "RemovePodSandbox",
            self.deadline(),
            self.transport.remove_pod_sandbox(request),
        )
        .await
        .map(drop)
    }

    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<PodSandboxStatus> {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            verbose: false,
        };
        with_deadline(
            "PodSandboxStatus",
            self.deadline(),
            self.transport.pod_sandbox_status(request),
        )
        .await?
        .status
        .ok_or_else(|| invalid_reply("PodSandboxStatus", "no status"))
    }

    async fn list_pod_sandbox(&self, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>> {
        let request = ListPodSandboxRequest { filter };
        let reply = with_deadline(
            "ListPodSandbox",
            self.deadline(),
            self.transport.list_pod_sandbox(request),
        )
        .await?;
        Ok(reply.items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String> {
        let request = CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let reply = with_deadline(
            "CreateContainer",
            self.deadline(),
            self.transport.create_container(request),
        )
        .await?;
        if reply.container_id.is_empty() {
            return Err(invalid_reply("CreateContainer", "empty container id"));
        }
        Ok(reply.container_id)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let request = StartContainerRequest {
            container_id: container_id.to_string(),
        };
        with_deadline(
            "StartContainer",
            self.deadline(),
            self.transport.start_container(request),
        )
        .await
        .map(drop)
    }

    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<()> {
        let request = StopContainerRequest {
            container_id: container_id.to_string(),
            timeout: whole_seconds(timeout),
        };
        // The runtime waits out the grace period before SIGKILL; leave it the ordinary deadline
        // on top for the kill itself.
        let deadline = Some(self.request_timeout + timeout);
        with_deadline(
            "StopContainer",
            deadline,
            self.transport.stop_container(request),
        )
        .await
        .map(drop)
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let request = RemoveContainerRequest {
            container_id: container_id.to_string(),
        };
        with_deadline(
            "RemoveContainer",
            self.deadline(),
            self.transport.remove_container(request),
        )
        .await
        .map(drop)
    }

    async fn list_containers(&self, filter: Option<ContainerFilter>) -> Result<Vec<Container>> {
        let request = ListContainersRequest { filter };
        let reply = with_deadline(
            "ListContainers",
            self.deadline(),
            self.transport.list_containers(request),
        )
        .await?;
        Ok(reply.containers)
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus> {
        let request = ContainerStatusRequest {
            container_id: container_id.to_string(),
            verbose: false,
        };
        with_deadline(
            "ContainerStatus",
            self.deadline(),
            self.transport.container_status(request),
        )
        .await?
        .status
        .ok_or_else(|| invalid_reply("ContainerStatus", "no status"))
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let request = ReopenContainerLogRequest {
            container_id: container_id.to_string(),
        };
        with_deadline(
            "ReopenContainerLog",
            self.deadline(),
            self.transport.reopen_container_log(request),
        )
        .await
        .map(drop)
    }

    async fn update_container_resources(
        &self,
        container_id: &str,
        linux: LinuxContainerResources,
    ) -> Result<()> {
        let request = UpdateContainerResourcesRequest {
            container_id: container_id.to_string(),
            linux: Some(linux),
            ..Default::default()
        };
        with_deadline(
            "UpdateContainerResources",
            self.deadline(),
            self.transport.update_container_resources(request),
        )
        .await
        .map(drop)
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResponse> {
        let request = ExecSyncRequest {
            container_id: container_id.to_string(),
            cmd,
            timeout: whole_seconds(timeout),
        };
        // A zero timeout means "no limit" in CRI; otherwise the runtime gets the ordinary
        // deadline on top to kill the command and clean up.
        let deadline = (!timeout.is_zero()).then(|| self.request_timeout + timeout);
        with_deadline("ExecSync", deadline, self.transport.exec_sync(request))
            .await
            .map_err(|err| match err {
                // Report the command's own timeout, which is what a probe author set.
                crate::CriError::Timeout { rpc, .. } => crate::CriError::Timeout { rpc, timeout },
                other => other,
            })
    }

    async fn exec(&self, request: ExecRequest) -> Result<String> {
        with_deadline("Exec", self.deadline(), self.transport.exec(request))
            .await
            .map(|reply| reply.url)
    }

    async fn attach(&self, request: AttachRequest) -> Result<String> {
        with_deadline("Attach", self.deadline(), self.transport.attach(request))
            .await
            .map(|reply| reply.url)
    }

    async fn port_forward(&self, request: PortForwardRequest) -> Result<String> {
        with_deadline(
            "PortForward",
            self.deadline(),
            self.transport.port_forward(request),
        )
        .await
        .map(|reply| reply.url)
    }

    async fn list_container_stats(
        &self,
        filter: Option<ContainerStatsFilter>,
    ) -> Result<Vec<ContainerStats>> {
        let request = ListContainerStatsRequest { filter };
        let reply = with_deadline(
            "ListContainerStats",
            self.deadline(),
            self.transport.list_container_stats(request),
        )
        .await?;
        Ok(reply.stats)
    }

    async fn container_events(&self) -> Result<BoxStream<'static, Result<ContainerEventResponse>>> {
        const RPC: &str = "GetContainerEvents";
        // No deadline: the stream lives as long as the kubelet. A runtime without the RPC
        // (containerd 1.6) answers UNIMPLEMENTED in the response headers, so the call fails
        // here; one that reports it later does so as the stream's first item.
        let events = with_deadline(
            RPC,
            None,
            self.transport.get_container_events(GetEventsRequest {}),
        )
        .await?;
        Ok(events
            .map(|event| event.map_err(|status| status_error(RPC, None, status)))
            .boxed())
    }
}
