//! From the kubelet's configuration to its cgroups at start.

use crate::cm::cgroup_manager::CgroupError;
use crate::cm::cgroups::{PodCgroupSettings, PodCgroups};
use crate::cm::machine::MachineInfo;
use crate::cm::node_allocatable::{Amounts, NodeAllocatable, max_pids};
use kubelet_config::KubeletConfig;
use kubelet_kuberuntime::container_config::resources::{CfsQuota, MemoryQos};
use kubelet_kuberuntime::qos::CgroupDriver;
use std::path::Path;

/// --cgroup-driver, for cgroup names.
pub fn cgroup_driver(cfg: &KubeletConfig) -> CgroupDriver {
    match cfg.cgroup_driver {
        kubelet_config::CgroupDriver::Cgroupfs => CgroupDriver::Cgroupfs,
        kubelet_config::CgroupDriver::Systemd => CgroupDriver::Systemd,
    }
}

/// --cpu-cfs-quota and --cpu-cfs-quota-period.
pub fn cfs_quota(cfg: &KubeletConfig) -> CfsQuota {
    CfsQuota {
        enforce: cfg.cpu_cfs_quota,
        period_us: i64::try_from(cfg.cpu_cfs_quota_period.as_micros()).unwrap_or(i64::MAX),
    }
}

/// Whether MemoryQoS is in force: its gate on, on a cgroup v2 host (upstream checks both).
fn memory_qos_enabled(cfg: &KubeletConfig) -> bool {
    cfg.feature_gates.memory_qos && kubelet_stats::host::is_unified(Path::new(CGROUP_MOUNT))
}

const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// MemoryQoS for containers: memory.high between their request and their limit, or node
/// allocatable memory without a limit.
pub fn memory_qos(cfg: &KubeletConfig, machine: &MachineInfo) -> Option<MemoryQos> {
    if !memory_qos_enabled(cfg) {
        if cfg.feature_gates.memory_qos {
            tracing::warn!("the MemoryQoS feature gate has no effect: it needs cgroup v2");
        }
        return None;
    }
    let capacity = Amounts {
        memory: Some(machine.memory_bytes),
        ..Default::default()
    };
    let allocatable = node_allocatable(cfg).absolute(capacity).memory.unwrap_or(0);
    Some(MemoryQos {
        throttling_factor: cfg.memory_throttling_factor,
        node_allocatable_memory: i64::try_from(allocatable).unwrap_or(i64::MAX),
    })
}

/// The node allocatable settings of the configuration.
pub fn node_allocatable(cfg: &KubeletConfig) -> NodeAllocatable {
    NodeAllocatable {
        enforce: cfg.enforce_node_allocatable.iter().cloned().collect(),
        kube_reserved: Amounts::of_reservation(&cfg.kube_reserved),
        system_reserved: Amounts::of_reservation(&cfg.system_reserved),
        kube_reserved_cgroup: cfg.kube_reserved_cgroup.clone(),
        system_reserved_cgroup: cfg.system_reserved_cgroup.clone(),
        memory_qos: memory_qos_enabled(cfg),
    }
}

/// The pod cgroups, with kubepods limited and the QoS tiers made.
pub fn start_pod_cgroups(
    cfg: &KubeletConfig,
    machine: &MachineInfo,
) -> Result<PodCgroups, CgroupError> {
    let cgroups = PodCgroups::new(
        PodCgroupSettings {
            cgroup_root: cfg.cgroup_root.clone(),
            per_qos: cfg.cgroups_per_qos,
            pod_pids_limit: cfg.pod_pids_limit,
            cfs: cfs_quota(cfg),
            memory_qos: memory_qos_enabled(cfg),
        },
        cgroup_driver(cfg),
    )?;
    let capacity = Amounts {
        cpu_milli: Some(machine.cpu_milli),
        memory: Some(machine.memory_bytes),
        pids: max_pids(),
    };
    cgroups.start(&node_allocatable(cfg), capacity)?;
    Ok(cgroups)
}
