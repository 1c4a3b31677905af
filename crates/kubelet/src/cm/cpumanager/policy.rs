//! The static policy (upstream policy_static.go): containers of Guaranteed pods with an integer
//! CPU request get CPUs of their own, taken out of the shared pool; everything else runs on the
//! shared pool. The reserved CPUs stay in the shared pool and are never handed out.

use super::assignment::{AssignmentError, take_by_topology};
use super::cpuset::CpuSet;
use super::options::StaticPolicyOptions;
use super::state::CpuState;
use super::topology::CpuTopology;
use k8s_openapi::api::core::v1::{Container, Pod};
use kubelet_kuberuntime::qos::{QosClass, qos_class};
use std::collections::HashMap;
use thiserror::Error;

pub const STATIC: &str = "static";
pub const NONE: &str = "none";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "[cpumanager] unable to reserve the required amount of CPUs (size of {reserved} did not equal {wanted})"
    )]
    Reserve { reserved: String, wanted: usize },
    #[error(
        "SMT Alignment Error: requested {requested} cpus not multiple cpus per core = {per_core}"
    )]
    SmtNotMultiple { requested: usize, per_core: usize },
    #[error(
        "SMT Alignment Error: not enough free physical CPUs: available physical CPUs = {available}, requested CPUs = {requested}, CPUs per core = {per_core}"
    )]
    SmtNotEnough {
        available: usize,
        requested: usize,
        per_core: usize,
    },
    #[error(transparent)]
    Assignment(#[from] AssignmentError),
    /// A checkpoint that does not fit this machine or these reserved CPUs (validateState).
    #[error("{0}")]
    InvalidState(String),
}

impl PolicyError {
    /// The reason and message of a pod refused at admission for this error, as upstream's
    /// admission errors give them: SMT alignment is its own reason, anything else unexpected.
    pub fn admission(&self) -> (&'static str, String) {
        match self {
            PolicyError::SmtNotMultiple { .. } | PolicyError::SmtNotEnough { .. } => {
                ("SMTAlignmentError", self.to_string())
            }
            _ => (
                crate::devicemanager::UNEXPECTED_ADMISSION_ERROR,
                format!("Allocate failed due to {self}, which is unexpected"),
            ),
        }
    }
}

#[derive(Debug)]
pub struct StaticPolicy {
    topology: CpuTopology,
    reserved: CpuSet,
    /// Every thread of the cores the reserved CPUs are on: off limits for full-pcpus-only.
    reserved_physical: CpuSet,
    options: StaticPolicyOptions,
    /// The CPUs of a pod's init containers its app containers may take again; one pod at a time.
    cpus_to_reuse: HashMap<String, CpuSet>,
}

impl StaticPolicy {
    /// `NewStaticPolicy`: `reserved` when given (--reserved-cpus), else `num_reserved` CPUs taken
    /// by topology from the whole machine.
    pub fn new(
        topology: CpuTopology,
        num_reserved: usize,
        reserved: Option<CpuSet>,
        options: StaticPolicyOptions,
    ) -> Result<Self, PolicyError> {
        let reserved = match reserved {
            Some(cpus) if !cpus.is_empty() => cpus,
            _ => take_by_topology(&topology, &topology.cpus(), num_reserved).unwrap_or_default(),
        };
        if reserved.len() != num_reserved {
            return Err(PolicyError::Reserve {
                reserved: reserved.to_string(),
                wanted: num_reserved,
            });
        }
        let reserved_physical = reserved
            .iter()
            .filter_map(|cpu| topology.details.get(cpu))
            .fold(CpuSet::new(), |all, info| {
                all.union(&topology.details.cpus_in_core(info.core))
            });
        Ok(StaticPolicy {
            topology,
            reserved,
            reserved_physical,
            options,
            cpus_to_reuse: HashMap::new(),
        })
    }

    pub fn reserved(&self) -> &CpuSet {
        &self.reserved
    }

    /// `validateState`: an empty state starts with every CPU shared; a restored one must keep
    /// the reserved CPUs shared, never share an assigned CPU, and cover exactly this machine.
    pub fn start(&self, state: &mut CpuState) -> Result<(), PolicyError> {
        let all = self.topology.cpus();
        if state.default.is_empty() {
            if !state.assignments.is_empty() {
                return Err(PolicyError::InvalidState(
                    "default cpuset cannot be empty".into(),
                ));
            }
            state.default = all;
            return Ok(());
        }
        if !self.reserved.is_subset(&state.default) {
            return Err(PolicyError::InvalidState(format!(
                "not all reserved cpus: \"{}\" are present in defaultCpuSet: \"{}\"",
                self.reserved, state.default
            )));
        }
        let mut known = state.default.clone();
        for (pod, containers) in &state.assignments {
            for (container, cpus) in containers {
                if !state.default.intersection(cpus).is_empty() {
                    return Err(PolicyError::InvalidState(format!(
                        "pod: {pod}, container: {container} cpuset: \"{cpus}\" overlaps with default cpuset \"{}\"",
                        state.default
                    )));
                }
                known = known.union(cpus);
            }
        }
        if known != all {
            return Err(PolicyError::InvalidState(format!(
                "current set of available CPUs \"{all}\" doesn't match with CPUs in state \"{known}\""
            )));
        }
        Ok(())
    }

    /// `guaranteedCPUs`: the CPUs a container gets for itself, 0 for the shared pool.
    pub fn guaranteed_cpus(pod: &Pod, container: &Container) -> usize {
        if qos_class(pod) != QosClass::Guaranteed {
            return 0;
        }
        let request = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("cpu"))
            .and_then(|q| kubelet_quantity::milli_value(&q.0).ok())
            .unwrap_or(0);
        if request <= 0 || request % 1000 != 0 {
            return 0;
        }
        usize::try_from(request / 1000).unwrap_or(0)
    }

    /// `Allocate`: exclusive CPUs for the container when it qualifies and has none yet. Returns
    /// whether the state changed.
    pub fn allocate(
        &mut self,
        state: &mut CpuState,
        pod: &Pod,
        container: &Container,
    ) -> Result<bool, PolicyError> {
        let count = Self::guaranteed_cpus(pod, container);
        if count == 0 {
            return Ok(false);
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        if let Some(cpus) = state.get(uid, &container.name).cloned() {
            self.update_cpus_to_reuse(pod, container, &cpus);
            return Ok(false);
        }
        if self.options.full_physical_cpus_only {
            let per_core = self.topology.cpus_per_core();
            if !count.is_multiple_of(per_core) {
                return Err(PolicyError::SmtNotMultiple {
                    requested: count,
                    per_core,
                });
            }
            let available = state.default.difference(&self.reserved_physical).len();
            if count > available {
                return Err(PolicyError::SmtNotEnough {
                    available,
                    requested: count,
                    per_core,
                });
            }
        }
        let reusable = self.cpus_to_reuse.get(uid).cloned().unwrap_or_default();
        let allocatable = state.default.difference(&self.reserved).union(&reusable);
        let cpus = take_by_topology(&self.topology, &allocatable, count)?;
        state.default = state.default.difference(&cpus);
        state.set(uid, &container.name, cpus.clone());
        self.update_cpus_to_reuse(pod, container, &cpus);
        Ok(true)
    }

    /// An init container's CPUs are offered to the pod's next containers; an app container's
    /// are not. Restartable (sidecar) init containers run alongside, so they count as app ones.
    fn update_cpus_to_reuse(&mut self, pod: &Pod, container: &Container, cpus: &CpuSet) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.cpus_to_reuse.retain(|pod_uid, _| *pod_uid == uid);
        let reuse = self.cpus_to_reuse.entry(uid).or_default();
        let init = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .and_then(|inits| inits.iter().find(|c| c.name == container.name));
        *reuse = match init {
            Some(c) if c.restart_policy.as_deref() != Some("Always") => reuse.union(cpus),
            _ => reuse.difference(cpus),
        };
    }

    /// `RemoveContainer`: its CPUs go back to the shared pool, except those a sibling (an app
    /// container that reused an init container's CPUs) still holds. Returns whether it had any.
    pub fn remove_container(
        &mut self,
        state: &mut CpuState,
        pod_uid: &str,
        container: &str,
    ) -> bool {
        let Some(cpus) = state.get(pod_uid, container).cloned() else {
            return false;
        };
        let siblings = state
            .assignments
            .get(pod_uid)
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.as_str() != container)
            .fold(CpuSet::new(), |all, (_, cpus)| all.union(cpus));
        state.delete(pod_uid, container);
        state.default = state.default.union(&cpus.difference(&siblings));
        true
    }
}

#[cfg(test)]
mod tests;
