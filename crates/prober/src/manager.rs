//! The probe manager (upstream pkg/kubelet/prober/prober_manager.go): keeps one worker per
//! probed container and probe type, and answers what their results mean for the kubelet.

use crate::handlers::Handlers;
use crate::metrics::{ProberMetrics, WorkerLabels};
use crate::spec::{ProbeSpec, container_probe, probed_containers};
use crate::state::{PodProbes, State, WorkerSlot};
use crate::types::{ContainerRun, ProbeResult, ProbeType, ProbeUpdate};
use crate::worker::{Worker, initial_result};
use k8s_openapi::api::core::v1::Pod;
use kubelet_cri::RuntimeService;
use kubelet_kuberuntime::events::EventRecorder;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::Instant;

/// What the manager shares with its workers.
pub struct Shared {
    state: Mutex<State>,
    pub handlers: Handlers,
    pub events: Arc<dyn EventRecorder>,
    pub metrics: ProberMetrics,
    updates: UnboundedSender<ProbeUpdate>,
    /// When the manager was made: workers started within one period of it spread their first
    /// probe.
    pub started: Instant,
    next_worker: AtomicU64,
}

impl Shared {
    /// The state, even after a panicking worker poisoned the lock: every update to it is a
    /// single statement, so it is never left half-done.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends an update; nobody listening is not an error (the kubelet is shutting down).
    pub fn announce(&self, update: ProbeUpdate) {
        let _ = self.updates.send(update);
    }
}

/// Runs the liveness, readiness and startup probes of every pod it is told about.
pub struct ProbeManager {
    shared: Arc<Shared>,
}

impl ProbeManager {
    /// A manager and the channel on which it reports every change of a stored result.
    pub fn new(
        runtime: Arc<dyn RuntimeService>,
        events: Arc<dyn EventRecorder>,
    ) -> (Self, UnboundedReceiver<ProbeUpdate>) {
        let (updates, receiver) = unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            handlers: Handlers::new(runtime),
            events,
            metrics: ProberMetrics::default(),
            updates,
            started: Instant::now(),
            next_worker: AtomicU64::new(1),
        });
        (ProbeManager { shared }, receiver)
    }

    /// Called on every pod sync with the pod's running containers and pod IP. Starts a worker per
    /// (container, probe type) that has a probe; a new container id for a name restarts that
    /// container's workers, with fresh results; containers no longer running stop theirs. A pod
    /// being deleted keeps only its readiness probes, as upstream ends liveness and startup
    /// probing on deletion. Must be called inside a tokio runtime; never waits on a probe.
    pub fn sync_pod(&self, pod: &Pod, running: &[ContainerRun], pod_ip: Option<&str>) {
        let Some(uid) = pod.metadata.uid.clone() else {
            tracing::warn!(pod = ?pod.metadata.name, "pod without a UID: not probed");
            return;
        };
        let pod = Arc::new(pod.clone());
        let running: HashMap<String, ContainerRun> = running
            .iter()
            .map(|run| (run.name.clone(), run.clone()))
            .collect();
        let deleting = pod.metadata.deletion_timestamp.is_some();

        let mut wanted = Vec::new();
        for container in probed_containers(&pod) {
            let Some(run) = running.get(&container.name) else {
                continue;
            };
            for probe in ProbeType::ALL {
                if deleting && probe != ProbeType::Readiness {
                    continue;
                }
                if let Some(spec) = container_probe(container, probe) {
                    wanted.push((container.clone(), run.clone(), probe, ProbeSpec::new(spec)));
                }
            }
        }

        let mut state = self.shared.lock();
        let entry = state.pods.entry(uid.clone()).or_insert_with(|| PodProbes {
            pod: pod.clone(),
            pod_ip: None,
            running: HashMap::new(),
            workers: HashMap::new(),
        });
        entry.pod = pod.clone();
        entry.pod_ip = pod_ip.map(str::to_string);
        entry.running = running;

        let keep = |key: &(String, ProbeType), slot: &WorkerSlot| {
            wanted.iter().any(|(container, run, probe, _)| {
                (&container.name, probe) == (&key.0, &key.1) && run.id == slot.container_id
            })
        };
        let stale: Vec<_> = entry
            .workers
            .iter()
            .filter(|(key, slot)| !keep(key, slot))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(slot) = entry.workers.remove(&key) {
                self.stop(slot);
            }
        }
        for (container, run, probe, spec) in wanted {
            let key = (container.name.clone(), probe);
            if entry.workers.contains_key(&key) {
                continue;
            }
            let slot = self.start(&uid, &pod, container, run, probe, spec);
            entry.workers.insert(key, slot);
        }
    }

    /// Stops every worker of the pod and forgets its results.
    pub fn remove_pod(&self, pod_uid: &str) {
        let removed = self.shared.lock().pods.remove(pod_uid);
        for slot in removed
            .into_iter()
            .flat_map(|pod| pod.workers.into_values())
        {
            self.stop(slot);
        }
    }

    /// Whether the container is ready (upstream `UpdatePodStatus`): a running, started
    /// container without a readiness probe is ready; with one, once it succeeded. Asking about a
    /// container that is not ready yet makes its readiness probe run now rather than at its
    /// next tick, as upstream does on every status update.
    pub fn readiness(&self, pod_uid: &str, container_id: &str) -> bool {
        let state = self.shared.lock();
        let Some(pod) = state.pods.get(pod_uid) else {
            return false;
        };
        if !pod.started(container_id) {
            return false;
        }
        match pod.worker(container_id, ProbeType::Readiness) {
            None => true,
            Some(slot) if slot.result == Some(ProbeResult::Success) => true,
            Some(slot) => {
                slot.trigger.notify_one();
                false
            }
        }
    }

    /// Whether the container started: running, and its startup probe (if any) succeeded.
    pub fn started(&self, pod_uid: &str, container_id: &str) -> bool {
        let state = self.shared.lock();
        state
            .pods
            .get(pod_uid)
            .is_some_and(|pod| pod.started(container_id))
    }

    /// Whether the liveness probe failed past its threshold: the kubelet must kill the container
    /// (reason "Container X failed liveness probe") and let the restart policy decide.
    pub fn liveness_failed(&self, pod_uid: &str, container_id: &str) -> bool {
        self.result(pod_uid, container_id, ProbeType::Liveness) == Some(ProbeResult::Failure)
    }

    /// Whether the startup probe failed past its threshold: handled as a liveness failure.
    pub fn startup_failed(&self, pod_uid: &str, container_id: &str) -> bool {
        self.result(pod_uid, container_id, ProbeType::Startup) == Some(ProbeResult::Failure)
    }

    /// The stored result of one probe of a running container (`None`: no result yet, or no
    /// such probe).
    pub fn result(
        &self,
        pod_uid: &str,
        container_id: &str,
        probe: ProbeType,
    ) -> Option<ProbeResult> {
        let state = self.shared.lock();
        state.pods.get(pod_uid)?.worker(container_id, probe)?.result
    }

    /// Registers prober_probe_total{probe_type, result, container, pod, namespace, pod_uid}.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.shared.metrics.register(registry);
    }

    fn start(
        &self,
        pod_uid: &str,
        pod: &Pod,
        container: k8s_openapi::api::core::v1::Container,
        run: ContainerRun,
        probe: ProbeType,
        spec: ProbeSpec,
    ) -> WorkerSlot {
        let id = self.shared.next_worker.fetch_add(1, Ordering::Relaxed);
        let trigger = Arc::new(Notify::new());
        let labels = WorkerLabels {
            probe,
            container: container.name.clone(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod_uid: pod_uid.to_string(),
        };
        let result = initial_result(probe);
        if let Some(result) = result {
            self.shared.announce(ProbeUpdate {
                pod_uid: pod_uid.to_string(),
                container_name: run.name.clone(),
                container_id: run.id.clone(),
                probe,
                result,
            });
        }
        tracing::debug!(pod_uid, container = run.name, container_id = run.id, probe = %probe, "starting probe worker");
        let container_id = run.id.clone();
        let worker = Worker {
            shared: self.shared.clone(),
            id,
            pod_uid: pod_uid.to_string(),
            probe,
            spec,
            container,
            run,
            trigger: trigger.clone(),
            labels: labels.clone(),
        };
        WorkerSlot {
            id,
            container_id,
            result,
            trigger,
            task: tokio::spawn(worker.run()),
            labels,
        }
    }

    fn stop(&self, slot: WorkerSlot) {
        tracing::debug!(pod_uid = slot.labels.pod_uid, container = slot.labels.container, container_id = slot.container_id, probe = %slot.labels.probe, "stopping probe worker");
        slot.task.abort();
        self.shared.metrics.forget(&slot.labels);
    }
}

impl Drop for ProbeManager {
    fn drop(&mut self) {
        let pods = std::mem::take(&mut self.shared.lock().pods);
        for slot in pods.into_values().flat_map(|pod| pod.workers.into_values()) {
            slot.task.abort();
        }
    }
}
