//! The container config for CreateContainer (upstream kuberuntime_container.go
//! `generateContainerConfig`, kuberuntime_container_linux.go, and the kubelet's
//! `GenerateRunContainerOptions`).

pub mod env;
pub mod env_sources;
pub mod expansion;
mod host;
pub mod mounts;
pub mod resources;
pub mod security;
pub mod service_env;

use crate::labels;
use crate::sandbox_config::{SandboxConfigError, host_network, pod_hostname_and_domain};
use k8s_openapi::api::core::v1::{Container, Pod};
use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ImageSpec, KeyValue, LinuxContainerConfig,
};
use kubelet_volumes::HostMount;
use std::path::PathBuf;
use thiserror::Error;

/// Everything a container's config is built from.
#[derive(Debug, Clone)]
pub struct ContainerInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub restart_count: u32,
    /// The image reference the runtime resolved (its image id).
    pub image_ref: String,
    /// The container's volume mounts, already resolved to host paths.
    pub mounts: Vec<HostMount>,
    pub pod_ip: Option<String>,
    pub pod_ips: Vec<String>,
    pub host_ip: Option<String>,
    /// `<root dir>/pods/<uid>`.
    pub pod_dir: PathBuf,
    /// `--cluster-domain`, for the pod's FQDN in /etc/hosts.
    pub cluster_domain: String,
    pub node_memory_capacity: u64,
    pub node_allocatable_cpu_milli: Option<u64>,
    /// `--cpu-cfs-quota` and `--cpu-cfs-quota-period`.
    pub cfs_quota: resources::CfsQuota,
    /// MemoryQoS, when its feature gate is on.
    pub memory_qos: Option<resources::MemoryQos>,
    /// The ConfigMaps, Secrets and Services the environment refers to, read beforehand.
    pub env_sources: env_sources::EnvSources,
}

#[derive(Debug, Error)]
pub enum ContainerConfigError {
    #[error(transparent)]
    Env(#[from] env::EnvError),
    #[error(transparent)]
    Security(#[from] security::SecurityError),
    #[error(transparent)]
    Hostname(#[from] SandboxConfigError),
    #[error("failed to write the hosts file in {dir}: {source}")]
    EtcHosts {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// `<container name>/<restart count>.log`, relative to the sandbox's log directory.
pub fn container_log_path(container_name: &str, restart_count: u32) -> String {
    format!("{container_name}/{restart_count}.log")
}

/// The CRI config for one start of `input.container`. Writes the pod's managed hosts file and
/// a fresh termination message file under `input.pod_dir`.
pub fn container_config(
    input: &ContainerInput<'_>,
) -> Result<ContainerConfig, ContainerConfigError> {
    let (pod, c) = (input.pod, input.container);
    let envs = env::environment(input)?;
    let expand_all = |items: &Option<Vec<String>>| -> Vec<String> {
        items
            .iter()
            .flatten()
            .map(|s| {
                expansion::expand(s, |name| {
                    envs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
                })
            })
            .collect()
    };
    let pod_ips = if input.pod_ips.is_empty() {
        input.pod_ip.iter().cloned().collect()
    } else {
        input.pod_ips.clone()
    };

    let mut cri_mounts: Vec<_> = input.mounts.iter().map(mounts::cri_mount).collect();
    if mounts::wants_etc_hosts(c, &pod_ips) {
        let (hostname, domain) = pod_hostname_and_domain(pod, &input.cluster_domain)?;
        let aliases = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_aliases.as_deref())
            .unwrap_or_default();
        let mount = mounts::etc_hosts_mount(
            &input.pod_dir,
            &pod_ips,
            &hostname,
            &domain,
            aliases,
            host_network(pod),
        )
        .map_err(|source| ContainerConfigError::EtcHosts {
            dir: input.pod_dir.clone(),
            source,
        })?;
        cri_mounts.push(mount);
    }
    cri_mounts.extend(mounts::termination_message_mount(&input.pod_dir, c));

    let seccomp_root = input
        .pod_dir
        .parent()
        .and_then(|pods| pods.parent())
        .unwrap_or(&input.pod_dir)
        .join("seccomp");
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: c.name.clone(),
            attempt: input.restart_count,
        }),
        image: Some(ImageSpec {
            image: input.image_ref.clone(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        labels: labels::container_labels(pod, c),
        annotations: labels::container_annotations(pod, c, input.restart_count),
        mounts: cri_mounts,
        log_path: container_log_path(&c.name, input.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(resources::container_resources(
                pod,
                c,
                input.node_memory_capacity,
                input.cfs_quota,
                input.memory_qos,
            )),
            security_context: Some(security::security_context(pod, c, &seccomp_root)?),
        }),
        envs: envs
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect(),
        ..Default::default()
    })
}

#[cfg(test)]
mod env_tests;
#[cfg(test)]
mod tests;
