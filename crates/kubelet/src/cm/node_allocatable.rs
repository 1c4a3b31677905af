//! Node allocatable enforcement (upstream node_container_manager_linux.go): the kubepods cgroup
//! is limited to the node's capacity, or with `pods` in --enforce-node-allocatable to capacity
//! minus --kube-reserved and --system-reserved; with `kube-reserved` / `system-reserved` the
//! named existing cgroups are limited to their reservation. Eviction thresholds are not taken
//! off here: that is the node status's allocatable, not the cgroup's. Under MemoryQoS an
//! enforced reserved cgroup's memory is also protected (memory.min).

use crate::cm::cgroup_manager::{CgroupError, CgroupManager};
use crate::cm::resource_config::ResourceConfig;
use kubelet_kuberuntime::container_config::resources::milli_cpu_to_shares;
use std::collections::{BTreeMap, BTreeSet};

pub const PODS: &str = "pods";
pub const KUBE_RESERVED: &str = "kube-reserved";
pub const SYSTEM_RESERVED: &str = "system-reserved";
/// The resource name of process IDs in reservations (upstream pidlimit.PIDs).
const PID: &str = "pid";

/// Amounts of the resources a cgroup can be limited in; `None` is not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub cpu_milli: Option<u64>,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
}

impl Amounts {
    /// A --kube-reserved / --system-reserved map; the config validated the quantities.
    pub fn of_reservation(map: &BTreeMap<String, String>) -> Self {
        let value = |name: &str, milli: bool| {
            map.get(name).map(|q| {
                let v = if milli {
                    kubelet_quantity::milli_value(q)
                } else {
                    kubelet_quantity::value(q)
                };
                u64::try_from(v.unwrap_or(0)).unwrap_or(0)
            })
        };
        Self {
            cpu_milli: value("cpu", true),
            memory: value("memory", false),
            pids: value(PID, false),
        }
    }

    /// What is left of `self` after the reservations, never below zero.
    fn minus(self, reserved: &[Amounts]) -> Self {
        let sub = |total: Option<u64>, pick: fn(&Amounts) -> Option<u64>| {
            total.map(|t| {
                reserved
                    .iter()
                    .fold(t, |left, r| left.saturating_sub(pick(r).unwrap_or(0)))
            })
        };
        Self {
            cpu_milli: sub(self.cpu_milli, |r| r.cpu_milli),
            memory: sub(self.memory, |r| r.memory),
            pids: sub(self.pids, |r| r.pids),
        }
    }

    /// Upstream getCgroupConfig: shares for the CPU, the memory limit and the pids limit of
    /// the amounts given.
    pub fn cgroup_config(&self) -> ResourceConfig {
        ResourceConfig {
            cpu_shares: self
                .cpu_milli
                .map(|m| milli_cpu_to_shares(i64::try_from(m).unwrap_or(i64::MAX)) as u64),
            memory: self.memory,
            pids: self.pids.map(|p| i64::try_from(p).unwrap_or(i64::MAX)),
            ..Default::default()
        }
    }
}

/// --enforce-node-allocatable with the reservations and their cgroups.
#[derive(Debug, Clone, Default)]
pub struct NodeAllocatable {
    pub enforce: BTreeSet<String>,
    pub kube_reserved: Amounts,
    pub system_reserved: Amounts,
    pub kube_reserved_cgroup: String,
    pub system_reserved_cgroup: String,
    /// MemoryQoS on cgroup v2.
    pub memory_qos: bool,
}

impl NodeAllocatable {
    /// Upstream's GetNodeAllocatableAbsolute: capacity less both reservations, whatever is
    /// enforced.
    pub fn absolute(&self, capacity: Amounts) -> Amounts {
        capacity.minus(&[self.kube_reserved, self.system_reserved])
    }

    /// The kubepods cgroup's limits for a node of `capacity`.
    pub fn kubepods_config(&self, capacity: Amounts) -> ResourceConfig {
        let amounts = if self.enforce.contains(PODS) {
            self.absolute(capacity)
        } else {
            capacity
        };
        amounts.cgroup_config()
    }

    /// Creates and limits the kubepods cgroup, then limits the reserved cgroups that are
    /// enforced; these must exist already (upstream does not create them either).
    pub fn enforce(
        &self,
        manager: &dyn CgroupManager,
        kubepods: &str,
        capacity: Amounts,
    ) -> Result<(), CgroupError> {
        let config = self.kubepods_config(capacity);
        tracing::info!(
            cgroup = kubepods,
            ?config,
            "limiting the node allocatable cgroup"
        );
        manager.create(kubepods, &config)?;
        for (key, cgroup, amounts) in [
            (
                SYSTEM_RESERVED,
                &self.system_reserved_cgroup,
                &self.system_reserved,
            ),
            (
                KUBE_RESERVED,
                &self.kube_reserved_cgroup,
                &self.kube_reserved,
            ),
        ] {
            if self.enforce.contains(key) {
                let mut config = amounts.cgroup_config();
                if self.memory_qos {
                    config.memory_min = config.memory;
                }
                manager.update(cgroup, &config)?;
                tracing::info!(cgroup = %cgroup, "updated limits on the {key} cgroup");
            }
        }
        Ok(())
    }
}

/// The node's process ID capacity: the lower of kernel.pid_max and kernel.threads-max
/// (upstream pidlimit.Stats).
pub fn max_pids() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok();
    match (
        read("/proc/sys/kernel/pid_max"),
        read("/proc/sys/kernel/threads-max"),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: u64 = 1 << 30;

    fn capacity() -> Amounts {
        Amounts {
            cpu_milli: Some(4000),
            memory: Some(8 * GI),
            pids: Some(32768),
        }
    }

    fn allocatable(enforce: &[&str]) -> NodeAllocatable {
        NodeAllocatable {
            enforce: enforce.iter().map(|s| s.to_string()).collect(),
            kube_reserved: Amounts::of_reservation(&BTreeMap::from([
                ("cpu".into(), "500m".into()),
                ("memory".into(), "1Gi".into()),
                ("pid".into(), "1000".into()),
            ])),
            system_reserved: Amounts::of_reservation(&BTreeMap::from([(
                "memory".into(),
                "512Mi".into(),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn kubepods_gets_allocatable_when_pods_are_enforced() {
        let config = allocatable(&[PODS]).kubepods_config(capacity());
        assert_eq!(config.cpu_shares, Some(3584));
        assert_eq!(config.memory, Some(8 * GI - GI - 512 * (1 << 20)));
        assert_eq!(config.pids, Some(31768));
    }

    #[test]
    fn kubepods_gets_capacity_otherwise() {
        let config = allocatable(&[]).kubepods_config(capacity());
        assert_eq!(config.cpu_shares, Some(4096));
        assert_eq!(config.memory, Some(8 * GI));
        assert_eq!(config.pids, Some(32768));
    }

    #[test]
    fn reserved_cgroups_get_only_what_is_reserved() {
        let a = allocatable(&[]);
        assert_eq!(
            a.system_reserved.cgroup_config(),
            ResourceConfig {
                memory: Some(512 << 20),
                ..Default::default()
            }
        );
        assert_eq!(a.kube_reserved.cgroup_config().cpu_shares, Some(512));
    }

    #[test]
    fn absolute_allocatable_takes_both_reservations_off_whatever_is_enforced() {
        let a = allocatable(&[]).absolute(capacity());
        assert_eq!(a.memory, Some(8 * GI - GI - 512 * (1 << 20)));
        assert_eq!(a.cpu_milli, Some(3500));
    }

    #[test]
    fn memory_qos_protects_an_enforced_reservation() {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path().to_path_buf();
        let manager = crate::cm::cgroup_manager::Cgroupfs::with_hierarchies(vec![
            kubelet_host::cgroupfs::Hierarchy {
                mount: mount.clone(),
                controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
                v2: true,
            },
        ]);
        std::fs::create_dir_all(mount.join("system.slice")).unwrap();
        let mut a = allocatable(&[PODS, SYSTEM_RESERVED]);
        a.system_reserved_cgroup = "/system.slice".into();
        a.memory_qos = true;
        a.enforce(&manager, "/kubepods", capacity()).unwrap();
        let read = |file: &str| std::fs::read_to_string(mount.join(file)).unwrap();
        assert_eq!(read("system.slice/memory.max"), (512u64 << 20).to_string());
        assert_eq!(read("system.slice/memory.min"), (512u64 << 20).to_string());
        assert!(
            !mount.join("kubepods/memory.min").exists(),
            "kubepods is protected by the QoS tiers' requests, not here"
        );
    }

    #[test]
    fn never_below_zero() {
        let huge = Amounts {
            memory: Some(100 * GI),
            ..Default::default()
        };
        assert_eq!(capacity().minus(&[huge]).memory, Some(0));
    }
}
