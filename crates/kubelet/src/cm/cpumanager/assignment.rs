//! Which free CPUs a request gets (upstream cpu_assignment.go, takeByTopologyNUMAPacked): whole
//! NUMA nodes or sockets (whichever is higher in the hierarchy) first, then the other level, then
//! whole cores, then single threads. At every level the candidates with the fewest free CPUs
//! come first, ties to the lowest id, so allocations pack instead of fragmenting the machine.

use super::cpuset::CpuSet;
use super::topology::{CpuDetails, CpuTopology};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AssignmentError {
    #[error(
        "not enough cpus available to satisfy request: requested={requested}, available={available}"
    )]
    NotEnough { requested: usize, available: usize },
    #[error("failed to allocate cpus")]
    Failed,
}

struct Accumulator<'a> {
    topo: &'a CpuTopology,
    /// The CPUs still free.
    details: CpuDetails,
    needed: usize,
    result: CpuSet,
    /// NUMA nodes hold sockets (or are the same thing): they are the first level.
    numa_first: bool,
}

impl<'a> Accumulator<'a> {
    fn new(topo: &'a CpuTopology, available: &CpuSet, needed: usize) -> Self {
        Accumulator {
            topo,
            details: topo.details.keep_only(available),
            needed,
            result: CpuSet::new(),
            numa_first: topo.num_sockets >= topo.num_numa_nodes,
        }
    }

    /// Fewest free CPUs first, then the lowest id.
    fn sorted(&self, mut ids: Vec<u32>, free: impl Fn(&CpuDetails, u32) -> CpuSet) -> Vec<u32> {
        ids.sort_by_key(|id| (free(&self.details, *id).len(), *id));
        ids
    }

    fn sort_numa_nodes(&self) -> Vec<u32> {
        if self.numa_first {
            self.sorted(self.details.numa_nodes(), CpuDetails::cpus_in_numa_node)
        } else {
            self.sort_sockets()
                .into_iter()
                .flat_map(|s| {
                    self.sorted(
                        self.details.numa_nodes_in_socket(s),
                        CpuDetails::cpus_in_numa_node,
                    )
                })
                .collect()
        }
    }

    fn sort_sockets(&self) -> Vec<u32> {
        if self.numa_first {
            self.sort_numa_nodes()
                .into_iter()
                .flat_map(|n| {
                    self.sorted(
                        self.details.sockets_in_numa_node(n),
                        CpuDetails::cpus_in_socket,
                    )
                })
                .collect()
        } else {
            self.sorted(self.details.sockets(), CpuDetails::cpus_in_socket)
        }
    }

    fn sort_cores(&self) -> Vec<u32> {
        if self.numa_first {
            self.sort_sockets()
                .into_iter()
                .flat_map(|s| {
                    self.sorted(self.details.cores_in_socket(s), CpuDetails::cpus_in_core)
                })
                .collect()
        } else {
            self.sort_numa_nodes()
                .into_iter()
                .flat_map(|n| {
                    self.sorted(self.details.cores_in_numa_node(n), CpuDetails::cpus_in_core)
                })
                .collect()
        }
    }

    fn sort_cpus(&self) -> Vec<u32> {
        self.sort_cores()
            .into_iter()
            .flat_map(|core| self.details.cpus_in_core(core).iter().collect::<Vec<_>>())
            .collect()
    }

    fn take(&mut self, cpus: &CpuSet) {
        self.result = self.result.union(cpus);
        self.details = self
            .details
            .keep_only(&self.details.cpus().difference(&self.result));
        self.needed = self.needed.saturating_sub(cpus.len());
    }

    fn satisfied(&self) -> bool {
        self.needed == 0
    }

    fn take_full_numa_nodes(&mut self) {
        for numa in self.sort_numa_nodes() {
            let all = self.topo.details.cpus_in_numa_node(numa);
            if self.details.cpus_in_numa_node(numa).len() == all.len() && self.needed >= all.len() {
                self.take(&all);
            }
        }
    }

    fn take_full_sockets(&mut self) {
        for socket in self.sort_sockets() {
            let all = self.topo.details.cpus_in_socket(socket);
            if self.details.cpus_in_socket(socket).len() == self.topo.cpus_per_socket()
                && self.needed >= all.len()
            {
                self.take(&all);
            }
        }
    }

    fn take_full_cores(&mut self) {
        for core in self.sort_cores() {
            let all = self.topo.details.cpus_in_core(core);
            if self.details.cpus_in_core(core).len() == self.topo.cpus_per_core()
                && self.needed >= all.len()
            {
                self.take(&all);
            }
        }
    }

    fn take_remaining_cpus(&mut self) {
        for cpu in self.sort_cpus() {
            self.take(&CpuSet::from([cpu]));
            if self.satisfied() {
                return;
            }
        }
    }
}

/// `takeByTopologyNUMAPacked`: `count` CPUs out of `available`.
pub fn take_by_topology<'a>(
    topo: &'a CpuTopology,
    available: &CpuSet,
    count: usize,
) -> Result<CpuSet, AssignmentError> {
    let mut acc = Accumulator::new(topo, available, count);
    if acc.satisfied() {
        return Ok(acc.result);
    }
    if count > acc.details.cpus().len() {
        return Err(AssignmentError::NotEnough {
            requested: count,
            available: acc.details.cpus().len(),
        });
    }
    let steps: [fn(&mut Accumulator<'a>); 4] = if acc.numa_first {
        [
            Accumulator::take_full_numa_nodes,
            Accumulator::take_full_sockets,
            Accumulator::take_full_cores,
            Accumulator::take_remaining_cpus,
        ]
    } else {
        [
            Accumulator::take_full_sockets,
            Accumulator::take_full_numa_nodes,
            Accumulator::take_full_cores,
            Accumulator::take_remaining_cpus,
        ]
    };
    for step in steps {
        step(&mut acc);
        if acc.satisfied() {
            return Ok(acc.result);
        }
    }
    Err(AssignmentError::Failed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cm::cpumanager::topology::CpuInfo;

    /// Upstream's topoSingleSocketHT: 1 socket, 4 cores, 2 threads; core c = {c, c+4}.
    pub(crate) fn single_socket_ht() -> CpuTopology {
        CpuTopology::from_details((0..8).map(|cpu| {
            (
                cpu,
                CpuInfo {
                    numa_node: 0,
                    socket: 0,
                    core: cpu % 4,
                },
            )
        }))
    }

    /// Upstream's topoDualSocketHT: sockets alternate by CPU id; core c = {c, c+6}.
    pub(crate) fn dual_socket_ht() -> CpuTopology {
        CpuTopology::from_details((0..12).map(|cpu| {
            (
                cpu,
                CpuInfo {
                    numa_node: cpu % 2,
                    socket: cpu % 2,
                    core: cpu % 6,
                },
            )
        }))
    }

    /// Upstream's topoDualSocketMultiNumaPerSocketHT: 2 sockets x 2 NUMA nodes x 10 cores x 2
    /// threads; CPUs 0-39 are the first threads, NUMA node n holds cores 10n..10n+9.
    fn dual_socket_multi_numa_ht() -> CpuTopology {
        CpuTopology::from_details((0..80).map(|cpu| {
            let first = cpu % 40;
            (
                cpu,
                CpuInfo {
                    numa_node: first / 10,
                    socket: first / 20,
                    core: first,
                },
            )
        }))
    }

    fn set(text: &str) -> CpuSet {
        text.parse().unwrap()
    }

    /// Cases of upstream's TestTakeByTopologyNUMAPacked (cpu_assignment_test.go, v1.28).
    #[test]
    fn upstream_numa_packed_cases() {
        let single = single_socket_ht();
        let dual = dual_socket_ht();
        let multi = dual_socket_multi_numa_ht();
        let cases: Vec<(&str, &CpuTopology, &str, usize, &str)> = vec![
            ("zero cpus", &single, "0-7", 0, ""),
            ("one cpu", &single, "0-7", 1, "0"),
            ("one cpu, some taken", &single, "1,3,5-7", 1, "6"),
            ("two cpus", &single, "0-7", 2, "0,4"),
            ("all cpus", &single, "0-7", 8, "0-7"),
            (
                "two cpus, one core totally free",
                &single,
                "0-3,6",
                2,
                "2,6",
            ),
            ("a socket", &dual, "0-11", 6, "0,2,4,6,8,10"),
            ("a socket, multi-numa", &multi, "0-79", 40, "0-19,40-59"),
            ("a NUMA node", &multi, "0-79", 20, "0-9,40-49"),
            (
                "a NUMA node, one taken",
                &multi,
                "10-39,50-79",
                20,
                "10-19,50-59",
            ),
            ("a socket and a NUMA node", &multi, "0-79", 60, "0-29,40-69"),
            (
                "a socket and a NUMA node, a core taken",
                &multi,
                "1-39,41-79",
                60,
                "10-39,50-79",
            ),
            (
                "one cpu, dual socket, core from socket 0",
                &dual,
                "1-5,7-11",
                1,
                "2",
            ),
            (
                "4 full cores, 3 filling the first NUMA node",
                &dual,
                "0-11",
                8,
                "0-2,4,6-8,10",
            ),
            (
                "32 full cores, 30 filling 3 NUMA nodes",
                &multi,
                "0-79",
                64,
                "0-31,40-71",
            ),
        ];
        for (name, topo, available, count, want) in cases {
            let got = take_by_topology(topo, &set(available), count).unwrap();
            assert_eq!(got, set(want), "{name}");
        }
    }

    #[test]
    fn more_than_available_is_refused() {
        let err = take_by_topology(&single_socket_ht(), &set("0,2,4,6"), 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not enough cpus available to satisfy request: requested=5, available=4"
        );
    }

    #[test]
    fn synthetic_two_sockets_four_cores_two_threads() {
        let topo = CpuTopology::synthetic(2, 4, 2);
        let all = topo.cpus();
        // A whole socket: socket 0 is cores 0-3 and their siblings 8-11.
        assert_eq!(take_by_topology(&topo, &all, 8).unwrap(), set("0-3,8-11"));
        // Whole cores before threads: two CPUs are one core's two threads.
        assert_eq!(take_by_topology(&topo, &all, 2).unwrap(), set("0,8"));
        // CPU 0 reserved: a single thread fills its half-used core first.
        assert_eq!(take_by_topology(&topo, &set("1-15"), 1).unwrap(), set("8"));
        // Packing: with socket 1 partly used, 3 CPUs come from it (the fuller socket).
        assert_eq!(
            take_by_topology(&topo, &set("0-3,5-11,13-15"), 3).unwrap(),
            set("5,6,13")
        );
        // A socket and a core.
        assert_eq!(take_by_topology(&topo, &all, 10).unwrap(), set("0-4,8-12"));
    }

    #[test]
    fn synthetic_one_socket_two_cores_one_thread() {
        let topo = CpuTopology::synthetic(1, 2, 1);
        assert_eq!(take_by_topology(&topo, &topo.cpus(), 1).unwrap(), set("0"));
        assert_eq!(take_by_topology(&topo, &set("1"), 1).unwrap(), set("1"));
        assert_eq!(
            take_by_topology(&topo, &topo.cpus(), 2).unwrap(),
            set("0-1")
        );
    }
}
