//! The CRI traits over the fake's state.

use super::images::normalize;
use super::state::{ExecScript, StopOutcome, failed, not_found};
use super::views::SNAPSHOTS_MOUNTPOINT;
use super::{FakeRuntime, events, filters, rpc};
use crate::api::{
    AuthConfig, Container, ContainerConfig, ContainerEventResponse, ContainerFilter,
    ContainerStats, ContainerStatsFilter, ContainerStatus, ExecSyncResponse, FilesystemIdentifier,
    FilesystemUsage, Image, ImageSpec, LinuxContainerResources, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxStatus, RuntimeStatus, StatusResponse, UInt64Value,
    VersionResponse,
};
use crate::{CriError, ImageService, Result, RuntimeService};
use futures::stream::BoxStream;
use std::time::Duration;

const FAKE_VERSION: &str = "0.1.0";
/// Inodes a fake image occupies, for `ImageFsInfo`.
const INODES_PER_IMAGE: u64 = 400;

fn container_not_found(rpc: &'static str, id: &str) -> CriError {
    not_found(
        rpc,
        format!("an error occurred when try to find container {id:?}: not found"),
    )
}

#[async_trait::async_trait]
impl RuntimeService for FakeRuntime {
    async fn version(&self) -> Result<VersionResponse> {
        self.lock().begin(rpc::VERSION, None)?;
        Ok(VersionResponse {
            version: FAKE_VERSION.to_string(),
            runtime_name: "fake".to_string(),
            runtime_version: FAKE_VERSION.to_string(),
            runtime_api_version: "v1".to_string(),
        })
    }

    async fn status(&self) -> Result<StatusResponse> {
        let mut state = self.lock();
        state.begin(rpc::STATUS, None)?;
        Ok(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: state.conditions.clone(),
            }),
            ..Default::default()
        })
    }

    async fn run_pod_sandbox(
        &self,
        config: PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let mut state = self.lock();
        let pod_name = config.metadata.as_ref().map(|m| m.name.clone());
        state.begin(rpc::RUN_POD_SANDBOX, pod_name.as_deref())?;
        state.run_pod_sandbox(config, runtime_handler)
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let mut state = self.lock();
        let subject = state.sandbox_subject(sandbox_id);
        state.begin(rpc::STOP_POD_SANDBOX, Some(&subject))?;
        state.stop_pod_sandbox(sandbox_id)
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let mut state = self.lock();
        let subject = state.sandbox_subject(sandbox_id);
        state.begin(rpc::REMOVE_POD_SANDBOX, Some(&subject))?;
        state.remove_pod_sandbox(sandbox_id)
    }

    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<PodSandboxStatus> {
        let mut state = self.lock();
        let subject = state.sandbox_subject(sandbox_id);
        state.begin(rpc::POD_SANDBOX_STATUS, Some(&subject))?;
        let sandbox = state
            .sandbox_id(sandbox_id)
            .and_then(|id| state.sandboxes.get(&id))
            .ok_or_else(|| {
                not_found(
                    rpc::POD_SANDBOX_STATUS,
                    format!("an error occurred when try to find sandbox {sandbox_id:?}: not found"),
                )
            })?;
        Ok(state.sandbox_status(sandbox))
    }

    async fn list_pod_sandbox(&self, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>> {
        let mut state = self.lock();
        state.begin(rpc::LIST_POD_SANDBOX, None)?;
        let filter = filter.unwrap_or_default();
        let mut sandboxes: Vec<_> = state
            .sandboxes
            .values()
            .filter(|s| filters::sandbox_matches(&filter, &s.id, s.state as i32, &s.config.labels))
            .collect();
        sandboxes.sort_by_key(|s| s.seq);
        Ok(sandboxes
            .into_iter()
            .map(|s| state.sandbox_item(s))
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String> {
        let mut state = self.lock();
        let name = config.metadata.as_ref().map(|m| m.name.clone());
        state.begin(rpc::CREATE_CONTAINER, name.as_deref())?;
        state.create_container(sandbox_id, config, &sandbox_config)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let mut state = self.lock();
        let subject = state.container_subject(container_id);
        state.begin(rpc::START_CONTAINER, Some(&subject))?;
        state.start_container(container_id)
    }

    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<()> {
        let outcome = {
            let mut state = self.lock();
            let subject = state.container_subject(container_id);
            state.begin(rpc::STOP_CONTAINER, Some(&subject))?;
            state.stop_container(container_id, timeout)?
        };
        if let StopOutcome::KillAfter(grace) = outcome {
            tokio::time::sleep(grace).await;
            let mut state = self.lock();
            state.reap();
            if let Some(id) = state.container_id(container_id) {
                state.kill(&id);
            }
        }
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let mut state = self.lock();
        let subject = state.container_subject(container_id);
        state.begin(rpc::REMOVE_CONTAINER, Some(&subject))?;
        state.remove_container(container_id);
        Ok(())
    }

    async fn list_containers(&self, filter: Option<ContainerFilter>) -> Result<Vec<Container>> {
        let mut state = self.lock();
        state.begin(rpc::LIST_CONTAINERS, None)?;
        let filter = filter.unwrap_or_default();
        let mut containers: Vec<_> = state
            .containers
            .values()
            .filter(|c| {
                filters::container_matches(
                    &filter,
                    &c.id,
                    &c.sandbox_id,
                    c.state as i32,
                    &c.config.labels,
                )
            })
            .collect();
        containers.sort_by_key(|c| c.seq);
        Ok(containers
            .into_iter()
            .map(|c| state.container_item(c))
            .collect())
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus> {
        let mut state = self.lock();
        let subject = state.container_subject(container_id);
        state.begin(rpc::CONTAINER_STATUS, Some(&subject))?;
        let container = state
            .container_id(container_id)
            .and_then(|id| state.containers.get(&id))
            .ok_or_else(|| container_not_found(rpc::CONTAINER_STATUS, container_id))?;
        Ok(state.container_status(container))
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let mut state = self.lock();
        let subject = state.container_subject(container_id);
        state.begin(rpc::REOPEN_CONTAINER_LOG, Some(&subject))?;
        let id = state
            .container_id(container_id)
            .ok_or_else(|| container_not_found(rpc::REOPEN_CONTAINER_LOG, container_id))?;
        if !state.is_running(&id) {
            return Err(failed(
                rpc::REOPEN_CONTAINER_LOG,
                "container is not running".to_string(),
            ));
        }
        Ok(())
    }

    /// As containerd: only the CPU set is merged into the stored config, the rest is kept.
    async fn update_container_resources(
        &self,
        container_id: &str,
        linux: LinuxContainerResources,
    ) -> Result<()> {
        let mut state = self.lock();
        let subject = state.container_subject(container_id);
        state.begin(rpc::UPDATE_CONTAINER_RESOURCES, Some(&subject))?;
        let id = state
            .container_id(container_id)
            .ok_or_else(|| container_not_found(rpc::UPDATE_CONTAINER_RESOURCES, container_id))?;
        let record = state
            .containers
            .get_mut(&id)
            .ok_or_else(|| container_not_found(rpc::UPDATE_CONTAINER_RESOURCES, container_id))?;
        if !linux.cpuset_cpus.is_empty() {
            record
                .config
                .linux
                .get_or_insert_default()
                .resources
                .get_or_insert_default()
                .cpuset_cpus = linux.cpuset_cpus;
        }
        Ok(())
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResponse> {
        let script = {
            let mut state = self.lock();
            let name = state.container_subject(container_id);
            let subject = std::iter::once(name.as_str())
                .chain(cmd.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            state.begin(rpc::EXEC_SYNC, Some(&subject))?;
            let id = state
                .container_id(container_id)
                .ok_or_else(|| container_not_found(rpc::EXEC_SYNC, container_id))?;
            let container = &state.containers[&id];
            if !state.is_running(&id) {
                return Err(failed(
                    rpc::EXEC_SYNC,
                    format!("container is in {} state", container.state.as_str_name()),
                ));
            }
            state
                .exec_scripts
                .get(container.container_name())
                .cloned()
                .unwrap_or(ExecScript::Reply(ExecSyncResponse::default()))
        };
        match script {
            ExecScript::Reply(response) => Ok(response),
            ExecScript::Hang => {
                tokio::time::sleep(timeout).await;
                Err(CriError::Timeout {
                    rpc: rpc::EXEC_SYNC,
                    timeout,
                })
            }
        }
    }

    async fn list_container_stats(
        &self,
        filter: Option<ContainerStatsFilter>,
    ) -> Result<Vec<ContainerStats>> {
        let mut state = self.lock();
        state.begin(rpc::LIST_CONTAINER_STATS, None)?;
        let filter = filter.unwrap_or_default();
        let mut running: Vec<_> = state
            .containers
            .values()
            .filter(|c| state.is_running(&c.id))
            .filter(|c| filters::stats_match(&filter, &c.id, &c.sandbox_id, &c.config.labels))
            .collect();
        running.sort_by_key(|c| c.seq);
        Ok(running
            .into_iter()
            .map(|c| state.container_stats(c))
            .collect())
    }

    async fn container_events(&self) -> Result<BoxStream<'static, Result<ContainerEventResponse>>> {
        let receiver = {
            let mut state = self.lock();
            state.begin(rpc::GET_CONTAINER_EVENTS, None)?;
            let Some(subscribers) = &mut state.event_subscribers else {
                return Err(CriError::Unimplemented {
                    rpc: rpc::GET_CONTAINER_EVENTS,
                });
            };
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            subscribers.push(sender);
            receiver
        };
        Ok(events::stream(self.clone(), receiver))
    }
}

#[async_trait::async_trait]
impl ImageService for FakeRuntime {
    async fn image_status(&self, image: &ImageSpec) -> Result<Option<Image>> {
        let mut state = self.lock();
        state.begin(rpc::IMAGE_STATUS, Some(&image.image))?;
        Ok(state.images.resolve(&image.image).map(|i| i.to_cri()))
    }

    async fn pull_image(
        &self,
        image: &ImageSpec,
        auth: Option<AuthConfig>,
        _sandbox_config: Option<PodSandboxConfig>,
    ) -> Result<String> {
        let reference = normalize(&image.image);
        let delay = {
            let mut state = self.lock();
            state.pull_auths.push((image.image.clone(), auth));
            state.begin(rpc::PULL_IMAGE, Some(&image.image))?;
            state.pull_delays.get(&reference).copied()
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.lock();
        match state.pull_results.get(&reference).cloned() {
            Some(Err(message)) => Err(failed(rpc::PULL_IMAGE, message)),
            Some(Ok(())) => Ok(state.images.add(&image.image)),
            None => state
                .images
                .resolve(&image.image)
                .map(|i| i.id.clone())
                .ok_or_else(|| {
                    not_found(
                        rpc::PULL_IMAGE,
                        format!(
                            "failed to pull and unpack image {reference:?}: failed to resolve reference {reference:?}: {reference}: not found"
                        ),
                    )
                }),
        }
    }

    async fn list_images(&self) -> Result<Vec<Image>> {
        let mut state = self.lock();
        state.begin(rpc::LIST_IMAGES, None)?;
        Ok(state.images.all().iter().map(|i| i.to_cri()).collect())
    }

    async fn remove_image(&self, image: &ImageSpec) -> Result<()> {
        let mut state = self.lock();
        state.begin(rpc::REMOVE_IMAGE, Some(&image.image))?;
        state.images.remove(&image.image);
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>> {
        let mut state = self.lock();
        state.begin(rpc::IMAGE_FS_INFO, None)?;
        let images = state.images.all();
        Ok(vec![FilesystemUsage {
            timestamp: state.clock.now_nanos(),
            fs_id: Some(FilesystemIdentifier {
                mountpoint: SNAPSHOTS_MOUNTPOINT.to_string(),
            }),
            used_bytes: Some(UInt64Value {
                value: images.iter().map(|i| i.size).sum(),
            }),
            inodes_used: Some(UInt64Value {
                value: INODES_PER_IMAGE * images.len() as u64,
            }),
        }])
    }
}
