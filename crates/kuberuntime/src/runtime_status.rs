//! What the runtime says about one pod: its sandboxes and containers, read from CRI and decoded
//! from the upstream labels and annotations (upstream kubecontainer.PodStatus).

use crate::labels::{self, ContainerInfo};
use crate::termination_message;
use kubelet_cri::api::{self, ContainerState as CriContainerState, PodSandboxState};
use kubelet_cri::{Result, Runtime};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl From<i32> for ContainerState {
    fn from(v: i32) -> Self {
        match CriContainerState::try_from(v) {
            Ok(CriContainerState::ContainerCreated) => ContainerState::Created,
            Ok(CriContainerState::ContainerRunning) => ContainerState::Running,
            Ok(CriContainerState::ContainerExited) => ContainerState::Exited,
            _ => ContainerState::Unknown,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxStatus {
    pub id: String,
    pub ready: bool,
    pub attempt: u32,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    pub ips: Vec<String>,
    pub host_network: bool,
}

#[derive(Debug, Clone)]
pub struct ContainerStatus {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub state: ContainerState,
    /// Nanoseconds since the epoch; 0 when not reached.
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    /// For exited containers: the termination message (file, or log tail per policy).
    pub termination_message: Option<String>,
    pub info: ContainerInfo,
}

impl ContainerStatus {
    pub fn hash(&self) -> u64 {
        self.info.hash
    }
    pub fn restart_count(&self) -> u32 {
        self.info.restart_count
    }
}

/// A pod as the runtime sees it. Sandboxes and containers are sorted newest first, so the first
/// status of a container name is its current instance.
#[derive(Debug, Clone, Default)]
pub struct PodRuntimeStatus {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub sandboxes: Vec<SandboxStatus>,
    pub containers: Vec<ContainerStatus>,
}

impl PodRuntimeStatus {
    /// The newest instance of the named container.
    pub fn container(&self, name: &str) -> Option<&ContainerStatus> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Every instance of the named container, newest first.
    pub fn instances<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a ContainerStatus> + 'a {
        self.containers.iter().filter(move |c| c.name == name)
    }

    pub fn running_containers(&self) -> impl Iterator<Item = &ContainerStatus> {
        self.containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
    }

    /// The newest sandbox, if any.
    pub fn sandbox(&self) -> Option<&SandboxStatus> {
        self.sandboxes.first()
    }

    pub fn is_empty(&self) -> bool {
        self.sandboxes.is_empty() && self.containers.is_empty()
    }
}

fn uid_selector(uid: &str) -> HashMap<String, String> {
    HashMap::from([(labels::POD_UID_LABEL.to_string(), uid.to_string())])
}

/// Reads the runtime status of the pod with this UID.
pub async fn read_pod_status(
    runtime: &dyn Runtime,
    uid: &str,
    name: &str,
    namespace: &str,
) -> Result<PodRuntimeStatus> {
    let sandbox_filter = api::PodSandboxFilter {
        label_selector: uid_selector(uid),
        ..Default::default()
    };
    let mut sandboxes = Vec::new();
    for sb in runtime.list_pod_sandbox(Some(sandbox_filter)).await? {
        let status = match runtime.pod_sandbox_status(&sb.id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        sandboxes.push(sandbox_status(status));
    }
    sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));

    let container_filter = api::ContainerFilter {
        label_selector: uid_selector(uid),
        ..Default::default()
    };
    let mut containers = Vec::new();
    for c in runtime.list_containers(Some(container_filter)).await? {
        let status = match runtime.container_status(&c.id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        containers.push(container_status(status, c.pod_sandbox_id));
    }
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));

    Ok(PodRuntimeStatus {
        uid: uid.into(),
        name: name.into(),
        namespace: namespace.into(),
        sandboxes,
        containers,
    })
}

fn sandbox_status(s: api::PodSandboxStatus) -> SandboxStatus {
    let mut ips = Vec::new();
    if let Some(net) = &s.network {
        if !net.ip.is_empty() {
            ips.push(net.ip.clone());
        }
        ips.extend(net.additional_ips.iter().map(|ip| ip.ip.clone()));
    }
    let host_network = s
        .linux
        .as_ref()
        .and_then(|l| l.namespaces.as_ref())
        .and_then(|n| n.options.as_ref())
        .is_some_and(|o| o.network == api::NamespaceMode::Node as i32);
    SandboxStatus {
        id: s.id,
        ready: s.state == PodSandboxState::SandboxReady as i32,
        attempt: s.metadata.map(|m| m.attempt).unwrap_or(0),
        created_at: s.created_at,
        ips,
        host_network,
    }
}

fn container_status(s: api::ContainerStatus, sandbox_id: String) -> ContainerStatus {
    let info = ContainerInfo::from_labels(&s.labels, &s.annotations);
    let termination_message = (ContainerState::from(s.state) == ContainerState::Exited)
        .then(|| {
            termination_message::read(
                &s,
                &info.termination_message_path,
                &info.termination_message_policy,
            )
        })
        .flatten();
    ContainerStatus {
        termination_message,
        name: s
            .metadata
            .map(|m| m.name)
            .unwrap_or_else(|| info.container_name.clone()),
        id: s.id,
        sandbox_id,
        state: ContainerState::from(s.state),
        created_at: s.created_at,
        started_at: s.started_at,
        finished_at: s.finished_at,
        exit_code: s.exit_code,
        reason: s.reason,
        message: s.message,
        image: s.image.map(|i| i.image).unwrap_or_default(),
        image_ref: s.image_ref,
        info,
    }
}
