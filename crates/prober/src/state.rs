//! What the manager knows of each pod: its spec, its running containers and its probe workers,
//! whose slots hold the current results (upstream's results managers, keyed by worker).

use crate::metrics::WorkerLabels;
use crate::types::{ContainerRun, ProbeResult, ProbeType};
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One pod's probing state.
pub struct PodProbes {
    pub pod: Arc<Pod>,
    pub pod_ip: Option<String>,
    /// The running containers, by name.
    pub running: HashMap<String, ContainerRun>,
    pub workers: HashMap<(String, ProbeType), WorkerSlot>,
}

/// A running worker and its result for the one container id it probes.
pub struct WorkerSlot {
    /// Tells a worker that was replaced or stopped from its successor.
    pub id: u64,
    pub container_id: String,
    /// `None` until there is a result (a startup probe before its first verdict).
    pub result: Option<ProbeResult>,
    /// Asks the worker to probe now instead of at its next tick.
    pub trigger: Arc<Notify>,
    pub task: JoinHandle<()>,
    pub labels: WorkerLabels,
}

impl PodProbes {
    /// The name of the running container with this CRI id.
    pub fn container_name(&self, container_id: &str) -> Option<&str> {
        self.running
            .values()
            .find(|run| run.id == container_id)
            .map(|run| run.name.as_str())
    }

    /// The worker of this type probing exactly this container.
    pub fn worker(&self, container_id: &str, probe: ProbeType) -> Option<&WorkerSlot> {
        let name = self.container_name(container_id)?;
        self.workers
            .get(&(name.to_string(), probe))
            .filter(|slot| slot.container_id == container_id)
    }

    /// Upstream `isContainerStarted`: a running container without a startup probe is started;
    /// with one, once it succeeded.
    pub fn started(&self, container_id: &str) -> bool {
        if self.container_name(container_id).is_none() {
            return false;
        }
        match self.worker(container_id, ProbeType::Startup) {
            Some(slot) => slot.result == Some(ProbeResult::Success),
            None => true,
        }
    }
}

#[derive(Default)]
pub struct State {
    pub pods: HashMap<String, PodProbes>,
}
