//! Eviction signals (upstream makeSignalObservations): what is left of each resource, read from
//! the same summary /stats/summary serves, and the node condition and resource each signal
//! stands for.

use kubelet_cri::Runtime;
use kubelet_stats::Summary;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const MEMORY_AVAILABLE: &str = "memory.available";
pub const ALLOCATABLE_MEMORY_AVAILABLE: &str = "allocatableMemory.available";
pub const NODEFS_AVAILABLE: &str = "nodefs.available";
pub const NODEFS_INODES_FREE: &str = "nodefs.inodesFree";
pub const IMAGEFS_AVAILABLE: &str = "imagefs.available";
pub const IMAGEFS_INODES_FREE: &str = "imagefs.inodesFree";
pub const CONTAINERFS_AVAILABLE: &str = "containerfs.available";
pub const CONTAINERFS_INODES_FREE: &str = "containerfs.inodesFree";
pub const PID_AVAILABLE: &str = "pid.available";

/// The node conditions eviction reports, in the order they are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// MemoryPressure.
    Memory,
    /// DiskPressure.
    Disk,
    /// PIDPressure.
    Pid,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Memory => "MemoryPressure",
            Condition::Disk => "DiskPressure",
            Condition::Pid => "PIDPressure",
        }
    }
}

/// The resource a signal measures, named as upstream's eviction messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    EphemeralStorage,
    Inodes,
    Pids,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::EphemeralStorage => "ephemeral-storage",
            Resource::Inodes => "inodes",
            Resource::Pids => "pids",
        }
    }

    /// Counts print as decimal quantities, bytes as binary ones.
    pub fn format(self, amount: u64) -> String {
        match self {
            Resource::Memory | Resource::EphemeralStorage => {
                kubelet_quantity::binary_string(amount)
            }
            Resource::Inodes | Resource::Pids => {
                kubelet_quantity::canonical_string(&amount.to_string())
                    .unwrap_or_else(|_| amount.to_string())
            }
        }
    }
}

/// The condition and resource of a known signal.
pub fn describe(signal: &str) -> Option<(Condition, Resource)> {
    Some(match signal {
        MEMORY_AVAILABLE | ALLOCATABLE_MEMORY_AVAILABLE => (Condition::Memory, Resource::Memory),
        NODEFS_AVAILABLE | IMAGEFS_AVAILABLE | CONTAINERFS_AVAILABLE => {
            (Condition::Disk, Resource::EphemeralStorage)
        }
        NODEFS_INODES_FREE | IMAGEFS_INODES_FREE | CONTAINERFS_INODES_FREE => {
            (Condition::Disk, Resource::Inodes)
        }
        PID_AVAILABLE => (Condition::Pid, Resource::Pids),
        _ => return None,
    })
}

/// One measured signal: what is left and out of how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    pub available: u64,
    pub capacity: u64,
}

/// The signals at one moment; a signal that could not be read is absent and never pressures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    pub signals: BTreeMap<&'static str, Signal>,
}

impl Observations {
    /// Upstream's makeSignalObservations: memory from the root cgroup's working set, the node
    /// and image filesystems, and the pid limit. The container filesystem is the image
    /// filesystem unless the runtime reports its own.
    pub fn from_summary(summary: &Summary) -> Self {
        let mut signals = BTreeMap::new();
        let node = &summary.node;
        if let Some(m) = &node.memory
            && let (Some(available), Some(working_set)) = (m.available_bytes, m.working_set_bytes)
        {
            let capacity = available + working_set;
            signals.insert(
                MEMORY_AVAILABLE,
                Signal {
                    available,
                    capacity,
                },
            );
        }
        let mut fs = |bytes: &'static str,
                      inodes: &'static str,
                      stats: &kubelet_stats::types::FsStats| {
            if let (Some(available), Some(capacity)) = (stats.available_bytes, stats.capacity_bytes)
            {
                signals.insert(
                    bytes,
                    Signal {
                        available,
                        capacity,
                    },
                );
            }
            if let (Some(available), Some(capacity)) = (stats.inodes_free, stats.inodes) {
                signals.insert(
                    inodes,
                    Signal {
                        available,
                        capacity,
                    },
                );
            }
        };
        if let Some(nodefs) = &node.fs {
            fs(NODEFS_AVAILABLE, NODEFS_INODES_FREE, nodefs);
        }
        if let Some(runtime) = &node.runtime {
            if let Some(imagefs) = &runtime.image_fs {
                fs(IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE, imagefs);
            }
            if let Some(containerfs) = runtime.container_fs.as_ref().or(runtime.image_fs.as_ref()) {
                fs(CONTAINERFS_AVAILABLE, CONTAINERFS_INODES_FREE, containerfs);
            }
        }
        if let Some(rlimit) = &node.rlimit
            && let (Some(max), Some(running)) = (rlimit.maxpid, rlimit.curproc)
        {
            let capacity = u64::try_from(max).unwrap_or(0);
            signals.insert(
                PID_AVAILABLE,
                Signal {
                    available: capacity.saturating_sub(u64::try_from(running).unwrap_or(0)),
                    capacity,
                },
            );
        }
        Observations { signals }
    }
}

pub(crate) fn filesystem(path: &Path) -> Option<(Signal, Signal)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let block = st.fragment_size() as u64;
    Some((
        Signal {
            available: st.blocks_available() as u64 * block,
            capacity: st.blocks() as u64 * block,
        },
        Signal {
            available: st.files_available() as u64,
            capacity: st.files() as u64,
        },
    ))
}

pub(crate) async fn image_fs_mountpoint(runtime: &dyn Runtime) -> Option<PathBuf> {
    let usage = runtime.image_fs_info().await.ok()?;
    let mountpoint = &usage.first()?.fs_id.as_ref()?.mountpoint;
    Some(PathBuf::from(mountpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubelet_stats::types::{
        FsStats, MemoryStats, NodeStats, RlimitStats, RuntimeStats, Timestamp,
    };

    fn fs(available: u64, capacity: u64, free: u64, inodes: u64) -> FsStats {
        FsStats {
            time: Timestamp(0),
            available_bytes: Some(available),
            capacity_bytes: Some(capacity),
            used_bytes: None,
            inodes_free: Some(free),
            inodes: Some(inodes),
            inodes_used: None,
        }
    }

    #[test]
    fn signals_from_the_summary() {
        let summary = Summary {
            node: NodeStats {
                node_name: "n".into(),
                start_time: Timestamp(0),
                cpu: None,
                memory: Some(MemoryStats {
                    time: Timestamp(0),
                    available_bytes: Some(300),
                    usage_bytes: Some(800),
                    working_set_bytes: Some(700),
                    rss_bytes: None,
                    page_faults: None,
                    major_page_faults: None,
                }),
                network: None,
                fs: Some(fs(10, 100, 5, 50)),
                runtime: Some(RuntimeStats {
                    image_fs: Some(fs(20, 200, 6, 60)),
                    container_fs: None,
                }),
                rlimit: Some(RlimitStats {
                    time: Timestamp(0),
                    maxpid: Some(1000),
                    curproc: Some(400),
                }),
            },
            pods: Vec::new(),
        };
        let seen = Observations::from_summary(&summary);
        let get = |name| seen.signals[name];
        assert_eq!(
            get(MEMORY_AVAILABLE),
            Signal {
                available: 300,
                capacity: 1000
            }
        );
        assert_eq!(get(NODEFS_INODES_FREE).available, 5);
        assert_eq!(get(IMAGEFS_AVAILABLE).capacity, 200);
        assert_eq!(get(CONTAINERFS_AVAILABLE), get(IMAGEFS_AVAILABLE));
        assert_eq!(get(PID_AVAILABLE).available, 600);
    }

    #[test]
    fn quantities_print_as_upstream() {
        assert_eq!(Resource::Memory.format(100 << 20), "100Mi");
        assert_eq!(Resource::Memory.format(1000), "1000");
        assert_eq!(Resource::Inodes.format(5000), "5k");
        assert_eq!(
            describe(IMAGEFS_INODES_FREE),
            Some((Condition::Disk, Resource::Inodes))
        );
        assert_eq!(describe("memory.free"), None);
    }
}
