//! The eviction loop (upstream managerImpl.synchronize): every period, observe the signals,
//! compare them with the thresholds, publish the pressure conditions, reclaim node-level
//! resources for disk signals, then evict one pod, and wait for it to stop before the next
//! round.

use super::admission::is_critical;
use super::message::{REASON, eviction_message};
use super::metrics::EvictionMetrics;
use super::notifier::{
    MemcgNotifier, NODE_MEMORY_PRESSURE, PSI_STALL, PSI_WINDOW, PsiNotifier, usage_threshold,
};
use super::ranking::{Candidate, PodUsage, rank};
use super::readiness::runtime_not_ready;
use super::signals::{Condition, MEMORY_AVAILABLE, Observations, describe};
use super::thresholds::{Threshold, Tracker, from_config, met};
use crate::image_gc::ImageGc;
use crate::nodeshutdown::mark_disrupted;
use crate::pod_manager::{PodManager, full_name};
use crate::pod_workers::{PodWorkers, WorkerState};
use crate::status::StatusManager;
use crate::status::generate::{FAILED, SUCCEEDED};
use k8s_openapi::api::core::v1::Pod;
use kubelet_config::KubeletConfig;
use kubelet_cri::Runtime;
use kubelet_kuberuntime::events::{EventRecorder, EventType};
use kubelet_kuberuntime::manager::RuntimeManager;
use kubelet_kuberuntime::qos::pod_cgroup_parent;
use kubelet_nodestatus::PressureInputs;
use kubelet_stats::{StatsProvider, Summary};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify, watch};
use tokio::time::Instant;

/// Upstream evictionMonitoringPeriod.
pub const MONITORING_PERIOD: Duration = Duration::from_secs(10);
/// Upstream notifierRefreshInterval: how often the memcg thresholds are re-armed.
const NOTIFIER_REFRESH: Duration = Duration::from_secs(10);
/// Upstream podCleanupTimeout and podCleanupPollFreq: how long and how often the next round
/// waits for an evicted pod to stop.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
const CLEANUP_POLL: Duration = Duration::from_secs(1);
/// A hard eviction stops the pod with no grace; the kill path's minimum is one second.
const HARD_EVICTION_GRACE: Duration = Duration::from_secs(1);
/// The API's default terminationGracePeriodSeconds.
const DEFAULT_POD_GRACE: Duration = Duration::from_secs(30);
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// What the manager acts through.
pub struct Deps {
    pub runtime: Arc<dyn Runtime>,
    pub stats: Arc<StatsProvider>,
    pub pods: PodManager,
    pub workers: PodWorkers,
    pub status: Arc<StatusManager>,
    pub events: Arc<dyn EventRecorder>,
    pub image_gc: Arc<Mutex<ImageGc>>,
    pub containers: Arc<RuntimeManager>,
    pub metrics: EvictionMetrics,
}

pub struct EvictionManager {
    deps: Deps,
    node_name: String,
    period: Duration,
    max_pod_grace_period: Duration,
    cgroup_root: String,
    cgroups_per_qos: bool,
    cgroup_driver: kubelet_kuberuntime::qos::CgroupDriver,
    tracker: Tracker,
    wake: Arc<Notify>,
    /// One notifier per memory.available threshold, with --kernel-memcg-notification on
    /// cgroup v1.
    notifiers: Vec<(Threshold, MemcgNotifier)>,
    notifiers_armed: Option<Instant>,
    /// The memory pressure trigger, with --kernel-memcg-notification on cgroup v2.
    _pressure_trigger: Option<PsiNotifier>,
    conditions: Vec<Condition>,
}

impl EvictionManager {
    /// `period` is how often a round runs (upstream: 10 s).
    pub fn new(cfg: &KubeletConfig, period: Duration, deps: Deps) -> Self {
        let thresholds = from_config(cfg);
        let wake = Arc::new(Notify::new());
        let watch_memory = cfg.kernel_memcg_notification
            && thresholds.iter().any(|t| t.signal == MEMORY_AVAILABLE);
        let unified = kubelet_stats::host::is_unified(Path::new(CGROUP_MOUNT));
        let notifiers = if watch_memory && !unified {
            let root = PathBuf::from(CGROUP_MOUNT).join("memory");
            thresholds
                .iter()
                .filter(|t| t.signal == MEMORY_AVAILABLE)
                .map(|t| (t.clone(), MemcgNotifier::new(root.clone(), wake.clone())))
                .collect()
        } else {
            Vec::new()
        };
        let pressure_trigger = (watch_memory && unified)
            .then(|| {
                PsiNotifier::start(
                    Path::new(NODE_MEMORY_PRESSURE),
                    PSI_STALL,
                    PSI_WINDOW,
                    wake.clone(),
                )
                .inspect_err(|error| {
                    tracing::warn!(%error, "Eviction manager: no memory pressure notifications, memory is checked every round");
                })
                .ok()
            })
            .flatten();
        Self {
            deps,
            node_name: cfg.node_name.clone(),
            period,
            max_pod_grace_period: Duration::from_secs(
                u64::try_from(cfg.eviction_max_pod_grace_period).unwrap_or(0),
            ),
            cgroup_root: cfg.cgroup_root.clone(),
            cgroups_per_qos: cfg.cgroups_per_qos,
            cgroup_driver: crate::cm::cgroup_driver(cfg),
            tracker: Tracker::new(thresholds, cfg.eviction_pressure_transition_period),
            wake,
            notifiers,
            notifiers_armed: None,
            _pressure_trigger: pressure_trigger,
            conditions: Vec::new(),
        }
    }

    /// Runs rounds until the kubelet stops, publishing the node's pressure and readiness.
    pub async fn run(mut self, out: watch::Sender<PressureInputs>) {
        loop {
            if let Some(evicted) = self.synchronize(&out).await {
                tracing::info!(
                    pod_uid = %evicted,
                    "Eviction manager: pods evicted, waiting for pod to be cleaned up"
                );
                self.wait_for_cleanup(&evicted).await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.period) => {}
                _ = self.wake.notified() => {
                    tracing::info!("eviction manager: memory threshold crossed or memory pressure");
                }
            }
        }
    }

    fn publish(&self, out: &watch::Sender<PressureInputs>, not_ready_reasons: Vec<String>) {
        let has = |c| self.conditions.contains(&c);
        let inputs = PressureInputs {
            memory_pressure: has(Condition::Memory),
            disk_pressure: has(Condition::Disk),
            pid_pressure: has(Condition::Pid),
            not_ready_reasons,
        };
        out.send_if_modified(|old| {
            let changed = *old != inputs;
            *old = inputs;
            changed
        });
    }

    async fn summary(&self) -> Option<Summary> {
        let pods = self.deps.pods.pods();
        match self
            .deps
            .stats
            .summary(self.deps.runtime.as_ref(), &self.node_name, &pods)
            .await
        {
            Ok(summary) => Some(summary),
            Err(error) => {
                tracing::error!(%error, "Eviction manager: failed to get summary stats");
                None
            }
        }
    }

    /// Upstream UpdateThreshold for every notifier, at most every [`NOTIFIER_REFRESH`].
    fn refresh_notifiers(&mut self, summary: &Summary, now: Instant) {
        if self.notifiers.is_empty()
            || self
                .notifiers_armed
                .is_some_and(|at| now.duration_since(at) < NOTIFIER_REFRESH)
        {
            return;
        }
        self.notifiers_armed = Some(now);
        let Some(memory) = &summary.node.memory else {
            return;
        };
        for (threshold, notifier) in &mut self.notifiers {
            let Some(usage) = usage_threshold(memory, &threshold.amount) else {
                continue;
            };
            if let Err(error) = notifier.arm(usage) {
                tracing::warn!(%error, "Eviction manager: failed to update memory threshold notifier");
            }
        }
    }

    /// One round; returns the UID of the pod it evicted.
    async fn synchronize(&mut self, out: &watch::Sender<PressureInputs>) -> Option<String> {
        let not_ready = runtime_not_ready(self.deps.runtime.as_ref()).await;
        let observed_at = Instant::now();
        let Some(summary) = self.summary().await else {
            self.publish(out, not_ready);
            return None;
        };
        self.refresh_notifiers(&summary, observed_at);
        let seen = Observations::from_summary(&summary);
        let round = self.tracker.observe(&seen, observed_at);
        self.conditions = round.conditions;
        self.publish(out, not_ready);

        let thresholds = round.to_reclaim;
        let first = thresholds.first()?.clone();
        let (condition, resource) = describe(&first.signal)?;
        for t in &thresholds {
            self.deps
                .metrics
                .stats_age(&t.signal, observed_at.elapsed());
        }
        tracing::warn!(
            resource = resource.as_str(),
            "Eviction manager: attempting to reclaim"
        );
        if condition == Condition::Disk && self.reclaim_node_level_resources().await {
            tracing::info!(
                resource = resource.as_str(),
                "Eviction manager: able to reduce resource pressure without evicting pods."
            );
            return None;
        }
        let mut candidates = self.active_pods(&summary);
        if candidates.is_empty() {
            tracing::error!(
                "Eviction manager: eviction thresholds have been met, but no pods are active to evict"
            );
            return None;
        }
        rank(&first.signal, &mut candidates);
        for candidate in candidates {
            let pod = &candidate.pod;
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let stats = summary.pods.iter().find(|p| p.pod_ref.uid == uid);
            let message = eviction_message(resource, pod, stats, &thresholds, &seen);
            let grace = self.grace_period(&first, pod);
            if self.evict(pod, grace, &message) {
                self.deps.metrics.evicted(&first.signal);
                return Some(uid);
            }
        }
        None
    }

    /// Upstream reclaimNodeLevelResources for disk signals: dead containers, then unused
    /// images; true when no threshold (with its minimum reclaim) is met afterwards.
    async fn reclaim_node_level_resources(&self) -> bool {
        if let Err(error) = self.deps.containers.gc_node().await {
            tracing::info!(%error, "Eviction manager: unexpected error when attempting to reduce resource pressure");
        }
        if let Err(error) = self.deps.image_gc.lock().await.collect().await {
            tracing::info!(%error, "Eviction manager: unexpected error when attempting to reduce resource pressure");
        }
        let Some(summary) = self.summary().await else {
            return false;
        };
        met(
            self.tracker.thresholds(),
            &Observations::from_summary(&summary),
            true,
        )
        .is_empty()
    }

    /// Pods still meant to run: a worker syncing them and no terminal phase.
    fn active_pods(&self, summary: &Summary) -> Vec<Candidate> {
        self.deps
            .pods
            .pods()
            .into_iter()
            .filter(|pod| {
                let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                let phase = self.deps.status.get(uid).and_then(|s| s.phase);
                self.deps.workers.state(uid) == Some(WorkerState::Syncing)
                    && !matches!(phase.as_deref(), Some(SUCCEEDED) | Some(FAILED))
            })
            .map(|pod| {
                let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                let usage = summary
                    .pods
                    .iter()
                    .find(|p| p.pod_ref.uid == uid)
                    .map(|stats| {
                        let storage = stats.ephemeral_storage.as_ref();
                        PodUsage {
                            memory: stats
                                .memory
                                .as_ref()
                                .and_then(|m| m.working_set_bytes)
                                .unwrap_or(0),
                            disk_bytes: storage.and_then(|s| s.used_bytes).unwrap_or(0),
                            disk_inodes: storage.and_then(|s| s.inodes_used).unwrap_or(0),
                            pids: self.pids(&pod),
                        }
                    });
                Candidate { pod, usage }
            })
            .collect()
    }

    /// The pod's process count, from its cgroup in the v1 pids hierarchy or the unified one,
    /// named as the cgroup driver names it.
    fn pids(&self, pod: &Pod) -> u64 {
        let name = pod_cgroup_parent(pod, &self.cgroup_root, self.cgroups_per_qos);
        let path = self.cgroup_driver.path(&name);
        ["pids", ""]
            .into_iter()
            .map(|hierarchy| {
                PathBuf::from(CGROUP_MOUNT)
                    .join(hierarchy)
                    .join(path.trim_start_matches('/'))
                    .join("pids.current")
            })
            .find_map(|file| std::fs::read_to_string(file).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Hard: no grace beyond the kill path's minimum; soft: the pod's own, at most
    /// --eviction-max-pod-grace-period.
    fn grace_period(&self, threshold: &Threshold, pod: &Pod) -> Duration {
        if threshold.is_hard() {
            return HARD_EVICTION_GRACE;
        }
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .map_or(DEFAULT_POD_GRACE, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            });
        own.min(self.max_pod_grace_period).max(HARD_EVICTION_GRACE)
    }

    /// Upstream evictPod: never a critical pod; an Evicted event, the Failed status with the
    /// DisruptionTarget condition, then the pod's worker stops it.
    fn evict(&self, pod: &Pod, grace: Duration, message: &str) -> bool {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let span = tracing::info_span!(
            "pod",
            pod_uid = %uid,
            namespace = pod.metadata.namespace.as_deref().unwrap_or(""),
            name = pod.metadata.name.as_deref().unwrap_or("")
        );
        let _entered = span.enter();
        if is_critical(pod) {
            tracing::error!(pod = %full_name(pod), "Eviction manager: cannot evict a critical pod");
            return false;
        }
        self.deps
            .events
            .event(pod, EventType::Warning, REASON, message);
        tracing::info!(pod = %full_name(pod), ?grace, reason = message, "Evicting pod");
        mark_disrupted(pod, &self.deps.status, REASON, message);
        self.deps.workers.terminate(uid, Some(grace), false);
        true
    }

    async fn wait_for_cleanup(&self, uid: &str) {
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(
                self.deps.workers.state(uid),
                None | Some(WorkerState::Terminated)
            ) {
                tracing::info!(pod_uid = %uid, "Eviction manager: pod is successfully cleaned up");
                return;
            }
            tokio::time::sleep(CLEANUP_POLL).await;
        }
        tracing::warn!(pod_uid = %uid, "Eviction manager: timed out waiting for pods to be cleaned up");
    }
}
