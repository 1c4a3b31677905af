//! What the CPU manager has handed out (upstream cpumanager/state): the shared pool and each
//! container's exclusive CPUs, by pod UID and container name.

pub mod checkpoint;

use super::cpuset::CpuSet;
use std::collections::BTreeMap;

pub type Assignments = BTreeMap<String, BTreeMap<String, CpuSet>>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuState {
    /// The shared pool: every CPU not exclusively assigned (reserved CPUs included).
    pub default: CpuSet,
    pub assignments: Assignments,
}

impl CpuState {
    pub fn get(&self, pod_uid: &str, container: &str) -> Option<&CpuSet> {
        self.assignments.get(pod_uid)?.get(container)
    }

    /// `GetCPUSetOrDefault`.
    pub fn cpuset_or_default(&self, pod_uid: &str, container: &str) -> CpuSet {
        self.get(pod_uid, container)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }

    pub fn set(&mut self, pod_uid: &str, container: &str, cpus: CpuSet) {
        self.assignments
            .entry(pod_uid.to_string())
            .or_default()
            .insert(container.to_string(), cpus);
    }

    pub fn delete(&mut self, pod_uid: &str, container: &str) {
        if let Some(containers) = self.assignments.get_mut(pod_uid) {
            containers.remove(container);
            if containers.is_empty() {
                self.assignments.remove(pod_uid);
            }
        }
    }
}
