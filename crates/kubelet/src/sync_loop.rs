//! The sync loop (upstream syncLoop / syncLoopIteration): pod updates from the config mux, PLEG
//! events and the housekeeping tick, dispatched to the pod workers. The per-pod resync timers
//! live in the workers themselves.

use crate::admission::{self, Rejection};
use crate::cm::cpumanager::CpuManager;
use crate::cm::machine::MachineInfo;
use crate::devicemanager::{DeviceManager, UNEXPECTED_ADMISSION_ERROR};
use crate::housekeeping::Housekeeping;
use crate::pod_manager::{PodManager, is_mirror_pod};
use crate::pod_workers::PodWorkers;
use crate::server::healthz::Health;
use crate::status::generate::{FAILED, SUCCEEDED};
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use kubelet_kuberuntime::events::{EventRecorder, EventType};
use kubelet_nodestatus::PressureInputs;
use kubelet_prober::ProbeUpdate;
use kubelet_sources::{PodOperation, PodUpdate, SourcesReady};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

pub const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(2);

pub struct SyncLoop {
    pods: PodManager,
    /// Pods admission refused: known, reported Failed, never started.
    rejected: HashSet<String>,
    workers: PodWorkers,
    ready: SourcesReady,
    machine: MachineInfo,
    max_pods: u32,
    events: Arc<dyn EventRecorder>,
    housekeeping: Housekeeping,
    health: Health,
    /// True while the node shuts down: new pods are refused.
    shutting_down: Option<tokio::sync::watch::Receiver<bool>>,
    /// The current Node, for admission against its allocatable, labels and taints.
    node: Option<tokio::sync::watch::Receiver<Option<Node>>>,
    /// The node's pressure, for the eviction manager's admission.
    pressure: Option<tokio::sync::watch::Receiver<PressureInputs>>,
    /// Reserves device plugin resources at admission and frees those of ended pods.
    devices: Option<DeviceManager>,
    /// Assigns exclusive CPUs at admission (static CPU manager policy).
    cpus: Option<Arc<CpuManager>>,
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl SyncLoop {
    pub fn new(
        pods: PodManager,
        workers: PodWorkers,
        ready: SourcesReady,
        machine: MachineInfo,
        max_pods: u32,
        events: Arc<dyn EventRecorder>,
        health: Health,
    ) -> Self {
        let housekeeping = Housekeeping::new(workers.clone());
        Self {
            pods,
            rejected: HashSet::new(),
            workers,
            ready,
            machine,
            max_pods,
            events,
            housekeeping,
            health,
            shutting_down: None,
            node: None,
            pressure: None,
            devices: None,
            cpus: None,
        }
    }

    /// Refuses new pods while `shutting_down` says the node is going down.
    pub fn with_node_shutdown(mut self, shutting_down: tokio::sync::watch::Receiver<bool>) -> Self {
        self.shutting_down = Some(shutting_down);
        self
    }

    /// Refuses pods as the eviction manager does while the node is under pressure.
    pub fn with_eviction(mut self, pressure: tokio::sync::watch::Receiver<PressureInputs>) -> Self {
        self.pressure = Some(pressure);
        self
    }

    /// Admits pods only when their device plugin resources are free, and frees the devices of
    /// pods that ended.
    pub fn with_devices(mut self, devices: DeviceManager) -> Self {
        self.devices = Some(devices);
        self
    }

    /// Admits pods only when the CPU manager can give their containers the exclusive CPUs
    /// they ask for.
    pub fn with_cpus(mut self, cpus: Arc<CpuManager>) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// Admits pods against the Node `node` holds; while it holds none (not registered yet, or
    /// standalone), against the machine and max pods.
    pub fn with_node(mut self, node: tokio::sync::watch::Receiver<Option<Node>>) -> Self {
        self.node = Some(node);
        self
    }

    /// Runs until the update channel closes.
    pub async fn run(
        mut self,
        mut updates: UnboundedReceiver<PodUpdate>,
        mut pleg: UnboundedReceiver<String>,
        mut probes: UnboundedReceiver<ProbeUpdate>,
    ) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_PERIOD);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                u = updates.recv() => match u {
                    Some(u) => {
                        self.handle(u);
                        self.note_sources_ready(&updates);
                    }
                    None => return,
                },
                Some(uid) = pleg.recv() => {
                    if self.pods.contains(&uid) {
                        self.workers.wake(&uid);
                    }
                }
                // A probe result changed: the pod's ready flags, or a container to restart.
                Some(update) = probes.recv() => {
                    if self.pods.contains(&update.pod_uid) {
                        self.workers.wake(&update.pod_uid);
                    }
                }
                _ = housekeeping.tick() => {
                    // An empty first snapshot sends no update: this tick notices it.
                    self.note_sources_ready(&updates);
                    if self.pods.sources_ready() {
                        self.housekeeping.run(&self.pods.uids().into_iter().collect()).await;
                        if let Some(devices) = &self.devices {
                            devices.retain_pods(&self.active().iter().map(uid).collect());
                        }
                    }
                }
            }
            self.health.beat();
        }
    }

    /// A seen source has sent its first snapshot into the channel before it was marked seen;
    /// once the channel is drained after that, every such snapshot is in the pod manager.
    fn note_sources_ready(&self, updates: &UnboundedReceiver<PodUpdate>) {
        if !self.pods.sources_ready() && self.ready.all_ready() && updates.is_empty() {
            self.pods.mark_sources_ready();
        }
    }

    fn handle(&mut self, update: PodUpdate) {
        tracing::debug!(op = ?update.op, source = update.source, pods = update.pods.len(), "pod update");
        for pod in update.pods {
            // Mirror pods are never run: they tell the kubelet its static pods' copies exist.
            if is_mirror_pod(&pod) {
                self.pods.update_mirror(update.op, pod);
                continue;
            }
            let id = uid(&pod);
            match update.op {
                PodOperation::Add | PodOperation::Update | PodOperation::Reconcile => {
                    if self.rejected.contains(&id) {
                        continue;
                    }
                    if !self.pods.contains(&id)
                        && let Err(r) = self.admit(&pod)
                    {
                        self.reject(&pod, r);
                        self.pods.insert(id.clone(), pod);
                        self.rejected.insert(id);
                        continue;
                    }
                    self.pods.insert(id, pod.clone());
                    self.workers.update(pod);
                }
                PodOperation::Remove => {
                    self.pods.remove(&id);
                    if self.rejected.remove(&id) {
                        self.workers.syncer().status.remove(&id);
                    }
                    self.workers.terminate(&id, None, true);
                }
                PodOperation::Delete => {
                    let grace = pod
                        .metadata
                        .deletion_grace_period_seconds
                        .map(|s| Duration::from_secs(s.max(0) as u64));
                    self.pods.insert(id.clone(), pod.clone());
                    if self.rejected.contains(&id) {
                        // Nothing of it ran: it is finished as it is.
                        self.workers.syncer().status.finish(&pod, None);
                        continue;
                    }
                    // Deleted before it ever ran here (say, across a restart): its worker stops it.
                    if self.workers.state(&id).is_none() {
                        self.workers.update(pod.clone());
                    }
                    self.workers.delete(pod, grace);
                }
            }
        }
    }

    fn admit(&self, pod: &Pod) -> Result<(), Rejection> {
        if self.shutting_down.as_ref().is_some_and(|rx| *rx.borrow()) {
            return Err(Rejection {
                reason: kubelet_nodeshutdown::NODE_SHUTDOWN_NOT_ADMITTED_REASON.into(),
                message: kubelet_nodeshutdown::NODE_SHUTDOWN_NOT_ADMITTED_MESSAGE.into(),
            });
        }
        if let Some(pressure) = &self.pressure {
            crate::eviction::admit(pod, &pressure.borrow())?;
        }
        let active = self.active();
        if let Some(devices) = &self.devices {
            // As upstream, devices are freed only once every source has told its pods: before
            // that a pod holding devices may just not have arrived yet.
            let keep = self.pods.sources_ready().then(|| {
                let mut keep: BTreeSet<String> = active.iter().map(uid).collect();
                keep.insert(uid(pod));
                keep
            });
            devices
                .admit(pod, keep.as_ref())
                .map_err(|message| Rejection {
                    reason: UNEXPECTED_ADMISSION_ERROR.into(),
                    message,
                })?;
        }
        if let Some(cpus) = &self.cpus {
            cpus.admit(pod).map_err(|e| {
                let (reason, message) = e.admission();
                Rejection {
                    reason: reason.into(),
                    message,
                }
            })?;
        }
        let node = self.node.as_ref().and_then(|rx| rx.borrow().clone());
        let devices_held = self.devices.as_ref().map(|d| d.held()).unwrap_or_default();
        admission::admit(
            pod,
            &active.iter().collect::<Vec<_>>(),
            node.as_ref(),
            &self.machine,
            self.max_pods,
            &devices_held,
        )
    }

    /// The pods admitted and not yet finished.
    fn active(&self) -> Vec<Pod> {
        let status = &self.workers.syncer().status;
        self.pods
            .pods()
            .into_iter()
            .filter(|p| {
                let id = uid(p);
                let phase = status.get(&id).and_then(|s| s.phase);
                !self.rejected.contains(&id)
                    && !matches!(phase.as_deref(), Some(SUCCEEDED) | Some(FAILED))
            })
            .collect()
    }

    fn reject(&self, pod: &Pod, r: Rejection) {
        self.events
            .event(pod, EventType::Warning, &r.reason, &r.message);
        let status = PodStatus {
            phase: Some(FAILED.into()),
            reason: Some(r.reason),
            message: Some(r.message),
            ..Default::default()
        };
        self.workers.syncer().status.set(pod, status);
    }
}
