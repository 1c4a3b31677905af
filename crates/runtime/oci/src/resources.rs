//! CRI container resources as OCI LinuxResources (containerd's WithResources), shared by the
//! spec and by `update`.

use crate::SpecError;
use k8s_cri::v1::LinuxContainerResources;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroup, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};
use std::path::Path;

/// What the host's cgroups can enforce, probed once per call site.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CgroupSupport {
    /// Memory+swap accounting exists, so swap can be capped to the memory limit.
    pub swap: bool,
    /// The hugetlb controller is where the runtime will look for it.
    pub hugetlb: bool,
}

impl CgroupSupport {
    pub(crate) fn probe() -> CgroupSupport {
        let root = Path::new("/sys/fs/cgroup");
        if is_unified() {
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let path = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let controllers =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            CgroupSupport {
                swap: root.join(path).join("memory.swap.max").exists(),
                hugetlb: controllers.split_whitespace().any(|c| c == "hugetlb"),
            }
        } else {
            CgroupSupport {
                swap: root.join("memory/memory.memsw.limit_in_bytes").exists(),
                hugetlb: root.join("hugetlb").is_dir(),
            }
        }
    }
}

/// Whether /sys/fs/cgroup is a pure cgroup v2 mount (not the hybrid layout).
pub(crate) fn is_unified() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The OCI resources for a CRI request; `devices` is the device cgroup allowlist (empty for
/// `update`, which must leave the container's devices alone).
pub(crate) fn to_oci(
    r: Option<&LinuxContainerResources>,
    pids_limit: Option<i64>,
    devices: Vec<LinuxDeviceCgroup>,
    support: CgroupSupport,
) -> Result<LinuxResources, SpecError> {
    let build = |e: oci_spec::OciSpecError| SpecError::Build(e.to_string());
    let mut out = LinuxResourcesBuilder::default();
    if !devices.is_empty() {
        out = out.devices(devices);
    }
    if let Some(limit) = pids_limit.filter(|l| *l != 0) {
        out = out.pids(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(build)?,
        );
    }
    let Some(r) = r else {
        return out.build().map_err(build);
    };
    let mut cpu = LinuxCpuBuilder::default();
    if r.cpu_period != 0 {
        cpu = cpu.period(r.cpu_period as u64);
    }
    if r.cpu_quota != 0 {
        cpu = cpu.quota(r.cpu_quota);
    }
    if r.cpu_shares != 0 {
        cpu = cpu.shares(r.cpu_shares as u64);
    }
    if !r.cpuset_cpus.is_empty() {
        cpu = cpu.cpus(r.cpuset_cpus.clone());
    }
    if !r.cpuset_mems.is_empty() {
        cpu = cpu.mems(r.cpuset_mems.clone());
    }
    out = out.cpu(cpu.build().map_err(build)?);

    let mut memory = LinuxMemoryBuilder::default();
    let limit = r.memory_limit_in_bytes;
    let swap = r.memory_swap_limit_in_bytes;
    if limit != 0 {
        memory = memory.limit(limit);
        // Swap equal to the limit keeps a container from swapping unless it asked to.
        if swap == 0 && support.swap {
            memory = memory.swap(limit);
        }
    }
    if swap != 0 && support.swap {
        memory = memory.swap(swap);
    }
    out = out.memory(memory.build().map_err(build)?);

    if !r.hugepage_limits.is_empty() {
        if support.hugetlb {
            let limits = r
                .hugepage_limits
                .iter()
                .map(|h| {
                    LinuxHugepageLimitBuilder::default()
                        .page_size(h.page_size.clone())
                        .limit(h.limit as i64)
                        .build()
                        .map_err(build)
                })
                .collect::<Result<Vec<_>, _>>()?;
            out = out.hugepage_limits(limits);
        } else {
            // containerd's tolerate_missing_hugetlb_controller default: skip, do not fail.
            tracing::warn!("hugetlb cgroup controller is not available: hugepage limits skipped");
        }
    }
    if !r.unified.is_empty() {
        out = out.unified(
            r.unified
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    out.build().map_err(build)
}
