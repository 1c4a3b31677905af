//! The sandbox config for RunPodSandbox (upstream kuberuntime_sandbox.go
//! `generatePodSandboxConfig` and kuberuntime_sandbox_linux.go).

use crate::container_config::resources::{CfsQuota, amount, linux_resources};
use crate::dns::{self, DnsError, DnsOptions};
use crate::labels;
use crate::qos::{self, RESOURCE_CPU, RESOURCE_MEMORY};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, SELinuxOptions};
use kubelet_cri::api::{
    LinuxContainerResources, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol, SeLinuxOption,
    SecurityProfile, security_profile::ProfileType,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tracing::{info, warn};

#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// `--pod-logs-dir` (upstream /var/log/pods).
    pub pod_logs_dir: PathBuf,
    pub dns: DnsOptions,
    /// `--cgroup-root`.
    pub cgroup_root: String,
    /// `--cgroups-per-qos`.
    pub cgroups_per_qos: bool,
    /// `--cgroup-driver`: the form of the sandbox's cgroup parent.
    pub cgroup_driver: qos::CgroupDriver,
    /// `--cpu-cfs-quota` and `--cpu-cfs-quota-period`, for the sandbox's and containers' quota.
    pub cfs_quota: CfsQuota,
}

#[derive(Debug, Error)]
pub enum SandboxConfigError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("pod {field} {value:?} is not a valid DNS label: {reason}")]
    InvalidDnsLabel {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("hostname for pod {pod:?} was invalid: {hostname:?}")]
    InvalidHostname { pod: String, hostname: String },
    #[error(
        "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long (64 characters is the max, {} characters requested)",
        fqdn.len()
    )]
    FqdnTooLong { fqdn: String },
}

/// The sandbox config for `pod`; `attempt` counts the sandboxes created for it before.
pub fn pod_sandbox_config(
    pod: &Pod,
    attempt: u32,
    opts: &SandboxOptions,
) -> Result<PodSandboxConfig, SandboxConfigError> {
    let meta = &pod.metadata;
    let (name, namespace, uid) = (
        meta.name.clone().unwrap_or_default(),
        meta.namespace.clone().unwrap_or_default(),
        meta.uid.clone().unwrap_or_default(),
    );
    let spec = pod.spec.as_ref();
    let mut config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name,
            uid,
            namespace,
            attempt,
        }),
        labels: labels::sandbox_labels(pod),
        annotations: labels::sandbox_annotations(pod),
        dns_config: Some(dns::pod_dns_config(pod, &opts.dns)?),
        log_directory: pod_log_directory(&opts.pod_logs_dir, pod)
            .to_string_lossy()
            .into_owned(),
        port_mappings: spec
            .into_iter()
            .flat_map(|s| &s.containers)
            .flat_map(port_mappings)
            .collect(),
        ..Default::default()
    };
    // Host-network pods keep the node's hostname: the runtime leaves it unset.
    if !host_network(pod) {
        let (hostname, domain) = pod_hostname_and_domain(pod, &opts.dns.cluster_domain)?;
        config.hostname = kernel_hostname(pod, hostname, &domain)?;
    }
    let mut linux = linux_config(pod, opts);
    linux.resources = Some(sandbox_resources(pod, opts.cfs_quota));
    linux.overhead = Some(overhead_resources(pod, opts.cfs_quota));
    config.linux = Some(linux);
    Ok(config)
}

/// `<pod logs dir>/<namespace>_<name>_<uid>`, the layout log shippers rely on.
pub fn pod_log_directory(pod_logs_dir: &Path, pod: &Pod) -> PathBuf {
    let m = &pod.metadata;
    pod_logs_dir.join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    ))
}

pub(crate) fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// `GeneratePodHostNameAndDomain`: spec.hostname or the pod name, cut to 63 characters, and
/// `<subdomain>.<namespace>.svc.<cluster domain>` when the pod has a subdomain.
pub fn pod_hostname_and_domain(
    pod: &Pod,
    cluster_domain: &str,
) -> Result<(String, String), SandboxConfigError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let mut hostname = pod_name.clone();
    if let Some(h) = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        check_dns_label("Hostname", h)?;
        hostname = h.to_owned();
    }
    let hostname = truncate_hostname(&pod_name, hostname)?;
    let mut domain = String::new();
    if let Some(sub) = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        check_dns_label("Subdomain", sub)?;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        domain = format!("{sub}.{namespace}.svc.{cluster_domain}");
    }
    Ok((hostname, domain))
}

fn truncate_hostname(pod_name: &str, hostname: String) -> Result<String, SandboxConfigError> {
    const MAX: usize = 63;
    if hostname.len() <= MAX {
        return Ok(hostname);
    }
    let truncated = hostname[..MAX].trim_end_matches(['-', '.']).to_owned();
    warn!(pod = pod_name, truncated = %truncated, "hostname for pod was too long, truncated it");
    if truncated.is_empty() {
        return Err(SandboxConfigError::InvalidHostname {
            pod: pod_name.to_owned(),
            hostname,
        });
    }
    Ok(truncated)
}

/// `GetNodenameForKernel`: the FQDN when setHostnameAsFQDN asks for it (at most 64 bytes).
fn kernel_hostname(
    pod: &Pod,
    hostname: String,
    domain: &str,
) -> Result<String, SandboxConfigError> {
    let as_fqdn = pod
        .spec
        .as_ref()
        .and_then(|s| s.set_hostname_as_fqdn)
        .unwrap_or(false);
    if domain.is_empty() || !as_fqdn {
        return Ok(hostname);
    }
    let fqdn = format!("{hostname}.{domain}");
    if fqdn.len() > 64 {
        return Err(SandboxConfigError::FqdnTooLong { fqdn });
    }
    Ok(fqdn)
}

fn check_dns_label(field: &'static str, value: &str) -> Result<(), SandboxConfigError> {
    let err = |reason: &str| SandboxConfigError::InvalidDnsLabel {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if value.len() > 63 {
        return Err(err("must be no more than 63 characters"));
    }
    let b = value.as_bytes();
    let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    if !b.iter().all(ok_char) || b.first() == Some(&b'-') || b.last() == Some(&b'-') {
        return Err(err(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ));
    }
    Ok(())
}

/// `MakePortMappings`: every declared port, the first of each name (or of each
/// family/protocol/address/ports tuple when unnamed) kept.
fn port_mappings(container: &Container) -> Vec<PortMapping> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in container.ports.iter().flatten() {
        let key = port_key(p);
        if !seen.insert(key.clone()) {
            warn!(container = %container.name, port = %key, "port name conflicted, it is defined more than once");
            continue;
        }
        out.push(PortMapping {
            protocol: runtime_protocol(p.protocol.as_deref()) as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        });
    }
    out
}

fn port_key(p: &ContainerPort) -> String {
    if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
        return name.to_owned();
    }
    let host_ip = p.host_ip.as_deref().unwrap_or_default();
    let family = match host_ip {
        "" => "any",
        ip if ip.contains(':') => "v6",
        _ => "v4",
    };
    format!(
        "{family}-{}-{host_ip}:{}:{}",
        p.protocol.as_deref().unwrap_or_default(),
        p.container_port,
        p.host_port.unwrap_or_default()
    )
}

fn runtime_protocol(protocol: Option<&str>) -> Protocol {
    match protocol {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        Some("TCP") => Protocol::Tcp,
        other => {
            info!(protocol = ?other, "unknown protocol, defaulting to TCP");
            Protocol::Tcp
        }
    }
}

/// `NamespacesForPod`: the node's namespaces for hostNetwork/hostPID/hostIPC, one PID
/// namespace for the pod with shareProcessNamespace, otherwise one per container. Always
/// explicit: the CRI default for PID is POD, the API's is CONTAINER.
pub fn namespace_options(pod: &Pod) -> NamespaceOption {
    let spec = pod.spec.as_ref();
    let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| {
        spec.and_then(f).unwrap_or(false)
    };
    let mode = |node: bool| if node { NamespaceMode::Node } else { NamespaceMode::Pod } as i32;
    let pid = if flag(|s| s.host_pid) {
        NamespaceMode::Node
    } else if flag(|s| s.share_process_namespace) {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    NamespaceOption {
        network: mode(flag(|s| s.host_network)),
        pid: pid as i32,
        ipc: mode(flag(|s| s.host_ipc)),
        ..Default::default()
    }
}

pub(crate) fn selinux_option(o: &SELinuxOptions) -> SeLinuxOption {
    SeLinuxOption {
        user: o.user.clone().unwrap_or_default(),
        role: o.role.clone().unwrap_or_default(),
        r#type: o.type_.clone().unwrap_or_default(),
        level: o.level.clone().unwrap_or_default(),
    }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
}

fn linux_config(pod: &Pod, opts: &SandboxOptions) -> LinuxPodSandboxConfig {
    let spec = pod.spec.as_ref();
    let ephemeral = spec
        .into_iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .map(|e| &e.security_context);
    let privileged = all_containers(pod)
        .map(|c| &c.security_context)
        .chain(ephemeral)
        .any(|sc| sc.as_ref().and_then(|s| s.privileged).unwrap_or(false));
    let mut sc = LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(pod)),
        privileged,
        // The sandbox always runs with the runtime's default profile so that pods can use
        // tight profiles for their own containers (upstream issue 84623).
        seccomp: Some(SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    if let Some(psc) = pod_sc {
        sc.run_as_user = psc
            .run_as_user
            .map(|value| kubelet_cri::api::Int64Value { value });
        sc.run_as_group = psc
            .run_as_group
            .map(|value| kubelet_cri::api::Int64Value { value });
        sc.supplemental_groups = psc
            .fs_group
            .into_iter()
            .chain(psc.supplemental_groups.iter().flatten().copied())
            .collect();
        sc.selinux_options = psc.se_linux_options.as_ref().map(selinux_option);
    }
    LinuxPodSandboxConfig {
        cgroup_parent: opts.cgroup_driver.cgroup_parent(&qos::pod_cgroup_parent(
            pod,
            &opts.cgroup_root,
            opts.cgroups_per_qos,
        )),
        security_context: Some(sc),
        sysctls: pod_sc
            .into_iter()
            .flat_map(|s| s.sysctls.iter().flatten())
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect(),
        ..Default::default()
    }
}

/// The cpu request and the cpu and memory limits of the whole pod, overhead excluded
/// (upstream resourcehelper PodRequests/PodLimits): the sum of the containers and sidecars, or
/// the largest init container plus the sidecars started before it, whichever is larger.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PodTotals {
    cpu_request: Option<i64>,
    cpu_limit: i64,
    memory_limit: i64,
}

fn pod_totals(pod: &Pod) -> PodTotals {
    type Amounts = [Option<i64>; 3];
    let get = |c: &Container| -> Amounts {
        let r = c.resources.as_ref();
        let (req, lim) = (
            r.and_then(|r| r.requests.as_ref()),
            r.and_then(|r| r.limits.as_ref()),
        );
        [
            amount(req, RESOURCE_CPU),
            amount(lim, RESOURCE_CPU),
            amount(lim, RESOURCE_MEMORY),
        ]
    };
    let add = |a: &mut Amounts, b: &Amounts| {
        for (x, y) in a.iter_mut().zip(b) {
            if let Some(y) = y {
                *x = Some(x.unwrap_or_default() + y);
            }
        }
    };
    let max = |a: &mut Amounts, b: &Amounts| {
        for (x, y) in a.iter_mut().zip(b) {
            if let Some(y) = y {
                *x = Some(x.map_or(*y, |x| x.max(*y)));
            }
        }
    };
    let spec = pod.spec.as_ref();
    let mut total: Amounts = [None; 3];
    for c in spec.into_iter().flat_map(|s| &s.containers) {
        add(&mut total, &get(c));
    }
    let (mut sidecars, mut init_max): (Amounts, Amounts) = ([None; 3], [None; 3]);
    for c in spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten())
    {
        let own = get(c);
        if c.restart_policy.as_deref() == Some("Always") {
            add(&mut total, &own);
            add(&mut sidecars, &own);
            max(&mut init_max, &sidecars);
        } else {
            let mut with_sidecars = own;
            add(&mut with_sidecars, &sidecars);
            max(&mut init_max, &with_sidecars);
        }
    }
    max(&mut total, &init_max);
    PodTotals {
        cpu_request: total[0],
        cpu_limit: total[1].unwrap_or_default(),
        memory_limit: total[2].unwrap_or_default(),
    }
}

fn sandbox_resources(pod: &Pod, cfs: CfsQuota) -> LinuxContainerResources {
    let t = pod_totals(pod);
    linux_resources(t.cpu_request, t.cpu_limit, t.memory_limit, cfs)
}

/// The pod overhead, treated as guaranteed (request = limit); empty without overhead.
fn overhead_resources(pod: &Pod, cfs: CfsQuota) -> LinuxContainerResources {
    match pod.spec.as_ref().and_then(|s| s.overhead.as_ref()) {
        Some(overhead) => {
            let cpu = amount(Some(overhead), RESOURCE_CPU).unwrap_or_default();
            linux_resources(
                Some(cpu),
                cpu,
                amount(Some(overhead), RESOURCE_MEMORY).unwrap_or_default(),
                cfs,
            )
        }
        None => LinuxContainerResources::default(),
    }
}

#[cfg(test)]
mod tests;
