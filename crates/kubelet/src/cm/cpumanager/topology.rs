//! The machine's CPU layout (upstream cpumanager/topology): for every logical CPU its core,
//! socket and NUMA node. A core's id is its lowest CPU id, as upstream numbers cores.

use super::cpuset::{CpuSet, ParseCpuSetError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuInfo {
    pub numa_node: u32,
    pub socket: u32,
    pub core: u32,
}

#[derive(Debug, Error)]
pub enum TopologyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error(transparent)]
    CpuSet(#[from] ParseCpuSetError),
    #[error("no online CPUs")]
    NoCpus,
}

/// CPU id -> where it sits; a subset of the machine's CPUs (the free ones) in the allocator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuDetails(BTreeMap<u32, CpuInfo>);

impl CpuDetails {
    pub fn get(&self, cpu: u32) -> Option<CpuInfo> {
        self.0.get(&cpu).copied()
    }

    pub fn keep_only(&self, cpus: &CpuSet) -> CpuDetails {
        CpuDetails(
            self.0
                .iter()
                .filter(|(cpu, _)| cpus.contains(**cpu))
                .map(|(cpu, info)| (*cpu, *info))
                .collect(),
        )
    }

    pub fn cpus(&self) -> CpuSet {
        self.0.keys().copied().collect()
    }

    fn ids(&self, of: impl Fn(&CpuInfo) -> u32, keep: impl Fn(&CpuInfo) -> bool) -> Vec<u32> {
        let ids: BTreeSet<u32> = self.0.values().filter(|i| keep(i)).map(of).collect();
        ids.into_iter().collect()
    }

    fn cpus_where(&self, keep: impl Fn(&CpuInfo) -> bool) -> CpuSet {
        self.0
            .iter()
            .filter(|(_, info)| keep(info))
            .map(|(cpu, _)| *cpu)
            .collect()
    }

    pub fn numa_nodes(&self) -> Vec<u32> {
        self.ids(|i| i.numa_node, |_| true)
    }

    pub fn sockets(&self) -> Vec<u32> {
        self.ids(|i| i.socket, |_| true)
    }

    pub fn cores(&self) -> Vec<u32> {
        self.ids(|i| i.core, |_| true)
    }

    pub fn sockets_in_numa_node(&self, numa: u32) -> Vec<u32> {
        self.ids(|i| i.socket, |i| i.numa_node == numa)
    }

    pub fn numa_nodes_in_socket(&self, socket: u32) -> Vec<u32> {
        self.ids(|i| i.numa_node, |i| i.socket == socket)
    }

    pub fn cores_in_socket(&self, socket: u32) -> Vec<u32> {
        self.ids(|i| i.core, |i| i.socket == socket)
    }

    pub fn cores_in_numa_node(&self, numa: u32) -> Vec<u32> {
        self.ids(|i| i.core, |i| i.numa_node == numa)
    }

    pub fn cpus_in_numa_node(&self, numa: u32) -> CpuSet {
        self.cpus_where(|i| i.numa_node == numa)
    }

    pub fn cpus_in_socket(&self, socket: u32) -> CpuSet {
        self.cpus_where(|i| i.socket == socket)
    }

    pub fn cpus_in_core(&self, core: u32) -> CpuSet {
        self.cpus_where(|i| i.core == core)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuTopology {
    pub details: CpuDetails,
    pub num_sockets: usize,
    pub num_cores: usize,
    pub num_numa_nodes: usize,
}

impl CpuTopology {
    pub fn from_details(details: impl IntoIterator<Item = (u32, CpuInfo)>) -> Self {
        let details = CpuDetails(details.into_iter().collect());
        CpuTopology {
            num_sockets: details.sockets().len(),
            num_cores: details.cores().len(),
            num_numa_nodes: details.numa_nodes().len(),
            details,
        }
    }

    /// `sockets` x `cores` x `threads`, one NUMA node per socket, numbered as Linux usually
    /// numbers them: the first thread of every core first, socket by socket, then the siblings.
    pub fn synthetic(sockets: u32, cores: u32, threads: u32) -> Self {
        let per_thread = sockets * cores;
        Self::from_details((0..threads).flat_map(|t| {
            (0..sockets).flat_map(move |s| {
                (0..cores).map(move |c| {
                    let first = s * cores + c;
                    (
                        t * per_thread + first,
                        CpuInfo {
                            numa_node: s,
                            socket: s,
                            core: first,
                        },
                    )
                })
            })
        }))
    }

    pub fn cpus(&self) -> CpuSet {
        self.details.cpus()
    }

    pub fn num_cpus(&self) -> usize {
        self.details.0.len()
    }

    pub fn cpus_per_core(&self) -> usize {
        self.num_cpus() / self.num_cores.max(1)
    }

    pub fn cpus_per_socket(&self) -> usize {
        self.num_cpus() / self.num_sockets.max(1)
    }

    /// Reads the online CPUs' layout from sysfs (`sys` is normally /sys).
    pub fn discover(sys: &Path) -> Result<Self, TopologyError> {
        let cpu_dir = sys.join("devices/system/cpu");
        let online: CpuSet = read(&cpu_dir.join("online"))?.parse()?;
        if online.is_empty() {
            return Err(TopologyError::NoCpus);
        }
        let numa = numa_nodes(&sys.join("devices/system/node"))?;
        let mut details = Vec::new();
        for cpu in online.iter() {
            let topo = cpu_dir.join(format!("cpu{cpu}/topology"));
            let package = topo.join("physical_package_id");
            let socket =
                read(&package)?
                    .trim()
                    .parse::<i64>()
                    .map_err(|e| TopologyError::Parse {
                        path: package.clone(),
                        reason: e.to_string(),
                    })?;
            let siblings: CpuSet = read(&topo.join("thread_siblings_list"))?.parse()?;
            details.push((
                cpu,
                CpuInfo {
                    numa_node: numa.get(&cpu).copied().unwrap_or(0),
                    // Some virtual machines report -1: they have one socket.
                    socket: u32::try_from(socket).unwrap_or(0),
                    core: siblings.iter().next().unwrap_or(cpu),
                },
            ));
        }
        Ok(Self::from_details(details))
    }
}

fn read(path: &Path) -> Result<String, TopologyError> {
    std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// CPU -> NUMA node from node*/cpulist; a kernel without NUMA has no node dir (everything is 0).
fn numa_nodes(dir: &Path) -> Result<BTreeMap<u32, u32>, TopologyError> {
    let mut map = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(map);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(node) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cpus: CpuSet = read(&entry.path().join("cpulist"))?.parse()?;
        map.extend(cpus.iter().map(|cpu| (cpu, node)));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_two_sockets_four_cores_two_threads() {
        let t = CpuTopology::synthetic(2, 4, 2);
        assert_eq!(
            (t.num_cpus(), t.num_sockets, t.num_cores, t.num_numa_nodes),
            (16, 2, 8, 2)
        );
        assert_eq!((t.cpus_per_core(), t.cpus_per_socket()), (2, 8));
        assert_eq!(t.details.cpus_in_core(1), CpuSet::from([1, 9]));
        assert_eq!(t.details.cpus_in_socket(1).to_string(), "4-7,12-15");
        assert_eq!(t.details.cores_in_socket(1), vec![4, 5, 6, 7]);
    }

    #[test]
    fn discovers_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        let write = |rel: &str, text: &str| {
            let path = sys.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("devices/system/cpu/online", "0-3\n");
        for (cpu, package, siblings) in [(0, 0, "0,2"), (1, 1, "1,3"), (2, 0, "0,2"), (3, 1, "1,3")]
        {
            write(
                &format!("devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                &format!("{package}\n"),
            );
            write(
                &format!("devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"),
                &format!("{siblings}\n"),
            );
        }
        write("devices/system/node/node0/cpulist", "0,2\n");
        write("devices/system/node/node1/cpulist", "1,3\n");
        let t = CpuTopology::discover(sys).unwrap();
        assert_eq!(
            t.details.get(3),
            Some(CpuInfo {
                numa_node: 1,
                socket: 1,
                core: 1
            })
        );
        assert_eq!((t.num_sockets, t.num_cores, t.num_numa_nodes), (2, 2, 2));
    }

    #[test]
    fn discovers_this_machine() {
        let t = CpuTopology::discover(Path::new("/sys")).unwrap();
        let online = kubelet_host::machine::online_cpus().unwrap();
        assert_eq!(t.num_cpus() as u64, online);
    }
}
