//! Pod events with the upstream reasons. Without an API server they go to the log; a recorder that
//! posts them is plugged in behind the same trait.

use k8s_openapi::api::core::v1::Pod;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Upstream event reasons the runtime manager uses.
pub mod reason {
    pub const PULLING: &str = "Pulling";
    pub const PULLED: &str = "Pulled";
    pub const FAILED: &str = "Failed";
    pub const BACK_OFF: &str = "BackOff";
    pub const CREATED: &str = "Created";
    pub const STARTED: &str = "Started";
    pub const KILLING: &str = "Killing";
    pub const SANDBOX_CHANGED: &str = "SandboxChanged";
    pub const FAILED_CREATE_POD_SANDBOX: &str = "FailedCreatePodSandBox";
    pub const FAILED_MOUNT: &str = "FailedMount";
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    pub const INSPECT_FAILED: &str = "InspectFailed";
    pub const CONTAINER_GC_FAILED: &str = "ContainerGCFailed";
    pub const IMAGE_GC_FAILED: &str = "ImageGCFailed";
    pub const INVALID_DISK_CAPACITY: &str = "InvalidDiskCapacity";
    pub const FREE_DISK_SPACE_FAILED: &str = "FreeDiskSpaceFailed";
}

pub trait EventRecorder: Send + Sync + 'static {
    fn event(&self, pod: &Pod, kind: EventType, reason: &str, message: &str);

    /// An event about the node itself; without an API server it is a log line.
    fn node_event(&self, kind: EventType, reason: &str, message: &str) {
        match kind {
            EventType::Normal => tracing::info!(object = "node", reason, "{message}"),
            EventType::Warning => tracing::warn!(object = "node", reason, "{message}"),
        }
    }
}

/// Records events as log lines, keyed by the pod.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogRecorder;

impl EventRecorder for LogRecorder {
    fn event(&self, pod: &Pod, kind: EventType, reason: &str, message: &str) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        match kind {
            EventType::Normal => {
                tracing::info!(pod = %format!("{ns}/{name}"), pod_uid = uid, reason, "{message}")
            }
            EventType::Warning => {
                tracing::warn!(pod = %format!("{ns}/{name}"), pod_uid = uid, reason, "{message}")
            }
        }
    }
}
