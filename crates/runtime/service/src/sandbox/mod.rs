//! Pod sandboxes: RunPodSandbox ([`run`]), Stop/Remove ([`stop`]), status and listing
//! ([`status`]). A sandbox is no process: its network, IPC and UTS namespaces are pinned by
//! bind mounts, plus the files every container mounts (hostname, resolv.conf, hosts, /dev/shm);
//! only a pod sharing one PID namespace gets a tiny init ([`pause`]).

mod files;
mod pause;
mod run;
mod status;
mod stop;

pub(crate) use run::run;
pub(crate) use status::{list, status, to_cri_status};
pub(crate) use stop::{remove, rollback, stop};

use k8s_cri::v1::{NamespaceMode, NamespaceOption, PodSandboxConfig};

/// Which of the host's namespaces the pod uses, and whether its containers share one PID
/// namespace. (A host PID namespace needs nothing from the sandbox: the containers' specs say
/// so from the same config.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Modes {
    pub host_network: bool,
    pub host_ipc: bool,
    /// shareProcessNamespace: the pod's init holds the PID namespace the containers join.
    pub shared_pid: bool,
}

impl Modes {
    /// Without namespace options nothing is shared with the host or between containers: the
    /// zero value of the CRI enum is POD, and a client that never set the options does not
    /// mean to ask for a shared PID namespace.
    pub(crate) fn of(config: &PodSandboxConfig) -> Modes {
        let Some(options) = namespace_options(config) else {
            return Modes::default();
        };
        let mode = |v: i32| NamespaceMode::try_from(v).unwrap_or(NamespaceMode::Pod);
        Modes {
            host_network: mode(options.network) == NamespaceMode::Node,
            host_ipc: mode(options.ipc) == NamespaceMode::Node,
            shared_pid: mode(options.pid) == NamespaceMode::Pod,
        }
    }
}

pub(crate) fn namespace_options(config: &PodSandboxConfig) -> Option<&NamespaceOption> {
    config
        .linux
        .as_ref()?
        .security_context
        .as_ref()?
        .namespace_options
        .as_ref()
}

/// The pod's cgroup parent as the kubelet gave it; empty = none.
pub(crate) fn cgroup_parent(config: &PodSandboxConfig) -> &str {
    config
        .linux
        .as_ref()
        .map_or("", |l| l.cgroup_parent.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{LinuxPodSandboxConfig, LinuxSandboxSecurityContext};

    fn with(options: NamespaceOption) -> PodSandboxConfig {
        PodSandboxConfig {
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(options),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn modes_from_namespace_options() {
        assert_eq!(Modes::of(&PodSandboxConfig::default()), Modes::default());
        let node = NamespaceMode::Node as i32;
        let container = NamespaceMode::Container as i32;
        let host = Modes::of(&with(NamespaceOption {
            network: node,
            ipc: node,
            pid: node,
            ..Default::default()
        }));
        assert!(host.host_network && host.host_ipc && !host.shared_pid);
        let own = Modes::of(&with(NamespaceOption {
            pid: container,
            ..Default::default()
        }));
        assert_eq!(own, Modes::default());
        let shared = Modes::of(&with(NamespaceOption::default()));
        assert!(shared.shared_pid && !shared.host_network);
    }
}
