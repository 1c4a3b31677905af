//! Which namespaces the container joins, creates or shares with the host.

use crate::{NamespacePaths, SpecError};
use k8s_cri::v1::{ContainerConfig, NamespaceMode, NamespaceOption, PodSandboxConfig};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType};
use std::path::PathBuf;

/// The namespace list, and whether the container has a UTS namespace of its own (the only
/// case where the spec may set a hostname).
pub(crate) struct Namespaces {
    pub list: Vec<LinuxNamespace>,
    pub own_uts: bool,
}

fn mode(value: i32) -> NamespaceMode {
    NamespaceMode::try_from(value).unwrap_or(NamespaceMode::Pod)
}

fn sandbox_options(sandbox: &PodSandboxConfig) -> Option<&NamespaceOption> {
    sandbox
        .linux
        .as_ref()?
        .security_context
        .as_ref()?
        .namespace_options
        .as_ref()
}

fn container_options(container: &ContainerConfig) -> Option<&NamespaceOption> {
    container
        .linux
        .as_ref()?
        .security_context
        .as_ref()?
        .namespace_options
        .as_ref()
}

pub(crate) fn build(
    container: &ContainerConfig,
    sandbox: &PodSandboxConfig,
    paths: &NamespacePaths,
    unified_cgroups: bool,
    privileged: bool,
) -> Result<Namespaces, SpecError> {
    let pod = sandbox_options(sandbox);
    let own = container_options(container);
    let pod_mode = |f: fn(&NamespaceOption) -> i32| pod.map(|o| mode(f(o)));
    let host_net = pod_mode(|o| o.network) == Some(NamespaceMode::Node)
        || own.map(|o| mode(o.network)) == Some(NamespaceMode::Node);
    let host_ipc = pod_mode(|o| o.ipc) == Some(NamespaceMode::Node)
        || own.map(|o| mode(o.ipc)) == Some(NamespaceMode::Node);
    // The container's own pid mode decides (the kubelet copies the pod's); the pod's is the
    // fallback for clients that set only that.
    let pid_mode = own.or(pod).map_or(NamespaceMode::Pod, |o| mode(o.pid));
    let host_pid =
        pid_mode == NamespaceMode::Node || pod_mode(|o| o.pid) == Some(NamespaceMode::Node);
    if let Some(userns) = own.and_then(|o| o.userns_options.as_ref())
        && mode(userns.mode) != NamespaceMode::Node
    {
        return Err(SpecError::Unsupported("user namespaces".into()));
    }

    let mut list = vec![ns(LinuxNamespaceType::Mount, None)?];
    // None: the host's. Some(None): a new one. Some(Some(path)): join.
    let pick = |host: bool, path: &Option<PathBuf>| -> Option<Option<PathBuf>> {
        if host { None } else { Some(path.clone()) }
    };
    // A pod on the host network has the host's UTS namespace too (containerd's sandbox rule).
    let uts = if host_net && paths.uts.is_none() {
        None
    } else {
        Some(paths.uts.clone())
    };
    // Pod-shared pid without a pinned namespace: a new one, since the zero value of the CRI
    // enum is POD and clients that never set it do not expect sharing.
    let pid = match pid_mode {
        _ if host_pid => None,
        NamespaceMode::Container => Some(None),
        NamespaceMode::Pod | NamespaceMode::Target | NamespaceMode::Node => Some(paths.pid.clone()),
    };
    for (typ, choice) in [
        (LinuxNamespaceType::Network, pick(host_net, &paths.net)),
        (LinuxNamespaceType::Ipc, pick(host_ipc, &paths.ipc)),
        (LinuxNamespaceType::Uts, uts.clone()),
        (LinuxNamespaceType::Pid, pid),
    ] {
        if let Some(path) = choice {
            list.push(ns(typ, path)?);
        }
    }
    // cgroup namespaces hide the host's cgroup tree, but only on pure cgroup v2, as containerd
    // (on v1 and for privileged containers the host's view is kept for compatibility).
    if unified_cgroups && !privileged {
        list.push(ns(LinuxNamespaceType::Cgroup, None)?);
    }
    Ok(Namespaces {
        list,
        own_uts: matches!(uts, Some(None)),
    })
}

fn ns(typ: LinuxNamespaceType, path: Option<PathBuf>) -> Result<LinuxNamespace, SpecError> {
    let mut b = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(p) = path {
        b = b.path(p);
    }
    b.build().map_err(|e| SpecError::Build(e.to_string()))
}
