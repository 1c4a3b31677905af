//! prober_probe_total, with upstream's labels (pkg/kubelet/prober/prober_manager.go).

use crate::types::{ProbeResult, ProbeType};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub probe_type: String,
    pub result: String,
    pub container: String,
    pub pod: String,
    pub namespace: String,
    pub pod_uid: String,
}

/// The labels of one worker, without the result.
#[derive(Debug, Clone)]
pub struct WorkerLabels {
    pub probe: ProbeType,
    pub container: String,
    pub pod: String,
    pub namespace: String,
    pub pod_uid: String,
}

/// Upstream's result label values. Its third, "unknown", never occurs: every probe that runs
/// ends in success or failure, and one that cannot run is not counted.
const SUCCESSFUL: &str = "successful";
const FAILED: &str = "failed";

#[derive(Debug, Clone, Default)]
pub struct ProberMetrics {
    probes: Family<ProbeLabels, Counter>,
}

impl ProberMetrics {
    pub fn register(&self, registry: &mut Registry) {
        // The client appends "_total" to a counter's name.
        registry.register(
            "prober_probe",
            "Cumulative number of a liveness, readiness or startup probe for a container by result.",
            self.probes.clone(),
        );
    }

    pub fn count(&self, worker: &WorkerLabels, result: ProbeResult) {
        let result = match result {
            ProbeResult::Success | ProbeResult::Warning => SUCCESSFUL,
            ProbeResult::Failure => FAILED,
        };
        self.probes.get_or_create(&labels(worker, result)).inc();
    }

    /// Drops a stopped worker's series, as upstream does when a worker exits.
    pub fn forget(&self, worker: &WorkerLabels) {
        for result in [SUCCESSFUL, FAILED] {
            self.probes.remove(&labels(worker, result));
        }
    }
}

fn labels(worker: &WorkerLabels, result: &str) -> ProbeLabels {
    ProbeLabels {
        probe_type: worker.probe.as_str().to_string(),
        result: result.to_string(),
        container: worker.container.clone(),
        pod: worker.pod.clone(),
        namespace: worker.namespace.clone(),
        pod_uid: worker.pod_uid.clone(),
    }
}
