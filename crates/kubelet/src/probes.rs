//! The prober as the rest of the kubelet sees it: results for the runtime manager's actions, ready
//! and started flags for the status, and the running containers it should probe.

use crate::status::generate::ProbeView;
use k8s_openapi::api::core::v1::Pod;
use kubelet_kuberuntime::actions::ProbeResults;
use kubelet_kuberuntime::manager::RuntimeManager;
use kubelet_kuberuntime::runtime_status::PodRuntimeStatus;
use kubelet_prober::{ContainerRun, ProbeManager, ProbeResult, ProbeType};

pub struct Probes {
    manager: ProbeManager,
}

impl Probes {
    pub fn new(manager: ProbeManager) -> Self {
        Self { manager }
    }

    /// Starts and stops probe workers for the containers that run now.
    pub fn sync_pod(&self, pod: &Pod, runtime: &RuntimeManager, status: &PodRuntimeStatus) {
        let mut seen = std::collections::HashSet::new();
        let running: Vec<ContainerRun> = status
            .running_containers()
            .filter(|c| seen.insert(c.name.clone()))
            .map(|c| ContainerRun {
                name: c.name.clone(),
                id: c.id.clone(),
                started_at: runtime.instant_of(c.started_at),
                restart_count: c.restart_count(),
            })
            .collect();
        let pod_ip = status
            .sandbox()
            .and_then(|s| s.ips.first())
            .map(String::as_str);
        self.manager.sync_pod(pod, &running, pod_ip);
    }

    pub fn remove_pod(&self, pod_uid: &str) {
        self.manager.remove_pod(pod_uid);
    }

    fn passed(&self, pod_uid: &str, container_id: &str, probe: ProbeType) -> Option<bool> {
        self.manager
            .result(pod_uid, container_id, probe)
            .map(|r| r != ProbeResult::Failure)
    }
}

impl ProbeResults for Probes {
    fn liveness(&self, pod_uid: &str, container_id: &str) -> Option<bool> {
        self.passed(pod_uid, container_id, ProbeType::Liveness)
    }

    fn startup(&self, pod_uid: &str, container_id: &str) -> Option<bool> {
        self.passed(pod_uid, container_id, ProbeType::Startup)
    }
}

impl ProbeView for Probes {
    fn ready(&self, pod_uid: &str, container_id: &str) -> bool {
        self.manager.readiness(pod_uid, container_id)
    }

    fn started(&self, pod_uid: &str, container_id: &str) -> bool {
        self.manager.started(pod_uid, container_id)
    }
}
