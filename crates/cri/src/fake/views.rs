//! What the CRI shows of the records: list items, statuses, stats and events.

use super::state::{ContainerRecord, SandboxRecord, State};
use crate::api::{
    Container, ContainerAttributes, ContainerEventResponse, ContainerEventType, ContainerResources,
    ContainerState, ContainerStats, ContainerStatus, CpuUsage, FilesystemIdentifier,
    FilesystemUsage, ImageSpec, LinuxPodSandboxStatus, MemoryUsage, Namespace, PodSandbox,
    PodSandboxNetworkStatus, PodSandboxStatus, UInt64Value,
};

/// Where containerd's overlayfs snapshotter keeps image layers and writable layers.
pub(super) const SNAPSHOTS_MOUNTPOINT: &str =
    "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs";
/// A fake container burns 10 ms of CPU per second of running.
const CPU_NANOS_PER_RUNNING_SECOND: u64 = 10_000_000;
const WORKING_SET_BYTES: u64 = 4 << 20;
const WRITABLE_LAYER_BYTES: u64 = 16 << 10;

fn uint64(value: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value })
}

impl State {
    pub fn sandbox_item(&self, sandbox: &SandboxRecord) -> PodSandbox {
        PodSandbox {
            id: sandbox.id.clone(),
            metadata: sandbox.config.metadata.clone(),
            state: sandbox.state as i32,
            created_at: sandbox.created_at,
            labels: sandbox.config.labels.clone(),
            annotations: sandbox.config.annotations.clone(),
            runtime_handler: sandbox.runtime_handler.clone(),
        }
    }

    pub fn sandbox_status(&self, sandbox: &SandboxRecord) -> PodSandboxStatus {
        let ip = if sandbox.network_torn_down {
            String::new()
        } else {
            sandbox.ip.clone()
        };
        let namespace_options = sandbox
            .config
            .linux
            .as_ref()
            .and_then(|linux| linux.security_context.as_ref())
            .and_then(|context| context.namespace_options.clone())
            .unwrap_or_default();
        PodSandboxStatus {
            id: sandbox.id.clone(),
            metadata: sandbox.config.metadata.clone(),
            state: sandbox.state as i32,
            created_at: sandbox.created_at,
            network: Some(PodSandboxNetworkStatus {
                ip,
                additional_ips: Vec::new(),
            }),
            linux: Some(LinuxPodSandboxStatus {
                namespaces: Some(Namespace {
                    options: Some(namespace_options),
                }),
            }),
            labels: sandbox.config.labels.clone(),
            annotations: sandbox.config.annotations.clone(),
            runtime_handler: sandbox.runtime_handler.clone(),
        }
    }

    /// A list item shows the image as the caller asked for it and the image id as `image_ref`.
    pub fn container_item(&self, container: &ContainerRecord) -> Container {
        Container {
            id: container.id.clone(),
            pod_sandbox_id: container.sandbox_id.clone(),
            metadata: container.config.metadata.clone(),
            image: container.config.image.clone(),
            image_ref: container.image.id.clone(),
            state: container.state as i32,
            created_at: container.created_at,
            labels: container.config.labels.clone(),
            annotations: container.config.annotations.clone(),
            image_id: container.image.id.clone(),
        }
    }

    /// A status shows the image by its first tag and `image_ref` as the repo digest, like
    /// containerd.
    pub fn container_status(&self, container: &ContainerRecord) -> ContainerStatus {
        let requested = container.config.image.clone().unwrap_or_default();
        let image = ImageSpec {
            image: container
                .image
                .repo_tags
                .first()
                .cloned()
                .unwrap_or(requested.image),
            annotations: requested.annotations,
            ..Default::default()
        };
        ContainerStatus {
            id: container.id.clone(),
            metadata: container.config.metadata.clone(),
            state: container.state as i32,
            created_at: container.created_at,
            started_at: container.started_at,
            finished_at: container.finished_at,
            exit_code: container.exit_code,
            image: Some(image),
            image_ref: container.image.image_ref(),
            reason: container.reason.clone(),
            message: container.message.clone(),
            labels: container.config.labels.clone(),
            annotations: container.config.annotations.clone(),
            mounts: container.config.mounts.clone(),
            log_path: container.log_path.clone(),
            // As containerd 1.7: the resources it runs with, updates included.
            resources: container
                .config
                .linux
                .as_ref()
                .and_then(|l| l.resources.clone())
                .map(|linux| ContainerResources {
                    linux: Some(linux),
                    ..Default::default()
                }),
            image_id: container.image.id.clone(),
            user: None,
        }
    }

    pub fn container_stats(&self, container: &ContainerRecord) -> ContainerStats {
        let now = self.clock.now();
        let timestamp = self.clock.nanos_at(now);
        let running_for = container
            .started
            .map(|started| now.saturating_duration_since(started))
            .unwrap_or_default();
        let running_seconds = running_for.as_secs_f64();
        // Rounding a plausible CPU figure to whole nanoseconds loses nothing a test cares about.
        let cpu_nanos = (running_seconds * CPU_NANOS_PER_RUNNING_SECOND as f64) as u64;
        ContainerStats {
            attributes: Some(ContainerAttributes {
                id: container.id.clone(),
                metadata: container.config.metadata.clone(),
                labels: container.config.labels.clone(),
                annotations: container.config.annotations.clone(),
            }),
            cpu: Some(CpuUsage {
                timestamp,
                usage_core_nano_seconds: uint64(cpu_nanos),
                usage_nano_cores: uint64(CPU_NANOS_PER_RUNNING_SECOND),
            }),
            memory: Some(MemoryUsage {
                timestamp,
                working_set_bytes: uint64(WORKING_SET_BYTES),
                available_bytes: None,
                usage_bytes: uint64(WORKING_SET_BYTES),
                rss_bytes: uint64(WORKING_SET_BYTES / 2),
                page_faults: uint64(1000),
                major_page_faults: uint64(0),
            }),
            writable_layer: Some(FilesystemUsage {
                timestamp,
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: SNAPSHOTS_MOUNTPOINT.to_string(),
                }),
                used_bytes: uint64(WRITABLE_LAYER_BYTES),
                inodes_used: uint64(8),
            }),
            swap: None,
        }
    }

    /// Statuses of a sandbox's containers, in creation order.
    pub fn container_statuses_of(&self, sandbox_id: &str) -> Vec<ContainerStatus> {
        self.containers_of(sandbox_id)
            .iter()
            .map(|id| self.container_status(&self.containers[id]))
            .collect()
    }

    /// Sends an event to every open stream, with the pod's sandbox status and the statuses of
    /// all its containers as containerd attaches them.
    pub fn emit(&mut self, container_id: &str, sandbox_id: &str, kind: ContainerEventType) {
        let Some(subscribers) = &self.event_subscribers else {
            return;
        };
        if subscribers.is_empty() {
            return;
        }
        let event = ContainerEventResponse {
            container_id: container_id.to_string(),
            container_event_type: kind as i32,
            created_at: self.clock.now_nanos(),
            pod_sandbox_status: self
                .sandboxes
                .get(sandbox_id)
                .map(|sandbox| self.sandbox_status(sandbox)),
            containers_statuses: self.container_statuses_of(sandbox_id),
        };
        if let Some(subscribers) = &mut self.event_subscribers {
            subscribers.retain(|subscriber| subscriber.send(event.clone()).is_ok());
        }
    }

    pub fn is_running(&self, container_id: &str) -> bool {
        self.containers.get(container_id).map(|c| c.state) == Some(ContainerState::ContainerRunning)
    }
}
