//! The CPUs a container is pinned to, asked of the CPU manager just before CreateContainer
//! (upstream's internal container lifecycle PreCreateContainer).

use k8s_openapi::api::core::v1::{Container, Pod};
use kubelet_cri::api::ContainerConfig;

/// Upstream's waiting reason when the hook fails.
pub const PRE_CREATE_HOOK_ERROR: &str = "PreCreateHookError";

pub trait ContainerCpus: Send + Sync {
    /// The container's CPU list ("0-3,7"), or None to leave the runtime's default. An error
    /// (no CPUs left to give) fails the container's creation.
    fn cpuset(&self, pod: &Pod, container: &Container) -> Result<Option<String>, String>;
}

/// Sets the cpuset of `config` from `cpus`.
pub(crate) fn apply(
    cpus: &dyn ContainerCpus,
    pod: &Pod,
    container: &Container,
    config: &mut ContainerConfig,
) -> Result<(), String> {
    if let Some(list) = cpus.cpuset(pod, container)? {
        config
            .linux
            .get_or_insert_default()
            .resources
            .get_or_insert_default()
            .cpuset_cpus = list;
    }
    Ok(())
}
