//! The records on disk: the CRI config as given plus what the runtime made of it. k8s-cri's
//! messages derive serde, so the configs are stored as they came.

use crate::store::Record;
use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use runtime_network::{NetworkResult, PinnedNamespaces};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SandboxPhase {
    /// RunPodSandbox has not finished; a record left in this phase is rolled back.
    Creating,
    Ready,
    NotReady,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub id: String,
    /// The reserved name (`name_namespace_uid_attempt`).
    pub name: String,
    pub config: PodSandboxConfig,
    pub runtime_handler: String,
    pub phase: SandboxPhase,
    pub created_at: i64,
    pub namespaces: PinnedNamespaces,
    /// The CNI result; None for host-network pods and until CNI ADD succeeded.
    pub network: Option<NetworkResult>,
    /// Whether CNI ADD may have run, so DEL is owed.
    pub network_attached: bool,
    pub files: SandboxFiles,
    /// The init holding a shared PID namespace.
    pub pause: Option<PauseProcess>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SandboxFiles {
    pub hostname: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    /// A tmpfs mounted here; None with host IPC.
    pub shm: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PauseProcess {
    /// Its OCI runtime id, also the name of its monitor's state dir.
    pub id: String,
    pub pid: i32,
}

impl SandboxFiles {
    pub(crate) fn to_oci(&self) -> runtime_oci::SandboxFiles {
        runtime_oci::SandboxFiles {
            hostname: self.hostname.clone(),
            resolv_conf: self.resolv_conf.clone(),
            hosts: self.hosts.clone(),
            shm: self.shm.clone(),
        }
    }
}

impl Record for SandboxRecord {
    const KIND: &'static str = "sandbox";
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ContainerPhase {
    /// CreateContainer has not finished; a record left in this phase is rolled back.
    Creating,
    Created,
    Running,
    Exited,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    /// The reserved name (`name_sandbox_namespace_uid_attempt`).
    pub name: String,
    pub config: ContainerConfig,
    pub image_id: String,
    /// ContainerStatus.image_ref: the image's repo digest, else its id.
    pub image_ref: String,
    pub runtime_handler: String,
    pub phase: ContainerPhase,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub pid: i32,
    /// The CRI log file; empty when the sandbox has no log directory.
    pub log_path: String,
    pub cgroups_path: String,
    /// The image's StopSignal, if it names one.
    pub stop_signal: Option<String>,
    /// Whether the image lease and the rootfs mount may exist (undone on removal).
    pub rootfs_mounted: bool,
}

impl Record for ContainerRecord {
    const KIND: &'static str = "container";
    fn id(&self) -> &str {
        &self.id
    }
}
