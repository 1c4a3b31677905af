//! A probe worker: one task per (container, probe type) that probes on its period and records
//! results past the thresholds (upstream pkg/kubelet/prober/worker.go).

use crate::handlers::Target;
use crate::manager::Shared;
use crate::metrics::WorkerLabels;
use crate::prober;
use crate::spec::ProbeSpec;
use crate::types::{ContainerRun, ProbeResult, ProbeType, ProbeUpdate};
use k8s_openapi::api::core::v1::{Container, Pod};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};

/// Everything a worker needs, fixed for its life: a new container id means a new worker.
pub struct Worker {
    pub shared: Arc<Shared>,
    pub id: u64,
    pub pod_uid: String,
    pub probe: ProbeType,
    pub spec: ProbeSpec,
    pub container: Container,
    pub run: ContainerRun,
    pub trigger: Arc<Notify>,
    pub labels: WorkerLabels,
}

/// The worker's memory between probes.
#[derive(Debug, Default)]
struct Streak {
    last: Option<ProbeResult>,
    /// How many probes in a row gave `last`.
    count: u32,
    /// After a liveness or startup failure: no probing until the container is replaced.
    on_hold: bool,
}

/// What a probe needs from the shared state, read under the lock.
struct Snapshot {
    pod: Arc<Pod>,
    pod_ip: Option<String>,
    started: bool,
}

/// The initial value a new container gets (upstream `initialValue`): not ready until proven,
/// alive until proven otherwise, and no startup verdict yet.
pub fn initial_result(probe: ProbeType) -> Option<ProbeResult> {
    match probe {
        ProbeType::Readiness => Some(ProbeResult::Failure),
        ProbeType::Liveness => Some(ProbeResult::Success),
        ProbeType::Startup => None,
    }
}

impl Worker {
    pub async fn run(self) {
        let period = self.spec.period;
        // Right after a kubelet (re)start every worker would probe at once: spread the first
        // probes over one period, as upstream does.
        if period > self.shared.started.elapsed() {
            tokio::time::sleep(period.mul_f64(fastrand::f64())).await;
        }
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        // Like Go's ticker: a slow probe drops the ticks it missed.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut streak = Streak::default();
        while self.probe_once(&mut streak).await {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.trigger.notified() => {}
            }
        }
    }

    /// Upstream `doProbe`: probes once if due and records the result. Returns whether to go on.
    async fn probe_once(&self, streak: &mut Streak) -> bool {
        let Some(snapshot) = self.snapshot() else {
            return false;
        };
        if streak.on_hold {
            return true;
        }
        // Whole seconds, as upstream compares them.
        if self.run.started_at.elapsed().as_secs() < self.spec.initial_delay.as_secs() {
            return true;
        }
        // A startup probe stops once the container started; the others wait for that.
        let waiting = match self.probe {
            ProbeType::Startup => snapshot.started,
            ProbeType::Liveness | ProbeType::Readiness => !snapshot.started,
        };
        if waiting {
            return true;
        }

        let target = Target {
            container: &self.container,
            container_id: &self.run.id,
            pod_ip: snapshot.pod_ip.as_deref(),
        };
        let events = self.shared.events.as_ref();
        let handlers = &self.shared.handlers;
        let result = match prober::run(
            handlers,
            events,
            &snapshot.pod,
            self.probe,
            &self.spec,
            target,
        )
        .await
        {
            Ok(result) => result,
            // Could not probe at all: throw the attempt away.
            Err(_) => return true,
        };
        self.shared.metrics.count(&self.labels, result);

        if streak.last == Some(result) {
            streak.count += 1;
        } else {
            streak.last = Some(result);
            streak.count = 1;
        }
        let threshold = match result {
            ProbeResult::Failure => self.spec.failure_threshold,
            _ => self.spec.success_threshold,
        };
        if streak.count < threshold {
            return true;
        }
        if !self.record(&snapshot.pod, result) {
            return false;
        }
        if self.probe != ProbeType::Readiness && result == ProbeResult::Failure {
            // The kubelet kills this container now; probing it while it stops helps nobody.
            streak.on_hold = true;
            streak.count = 0;
        }
        true
    }

    /// The pod's current state, or `None` when this worker was stopped or replaced.
    fn snapshot(&self) -> Option<Snapshot> {
        let state = self.shared.lock();
        let pod = state.pods.get(&self.pod_uid)?;
        pod.workers
            .get(&(self.run.name.clone(), self.probe))
            .filter(|slot| slot.id == self.id)?;
        Some(Snapshot {
            pod: pod.pod.clone(),
            pod_ip: pod.pod_ip.clone(),
            started: pod.started(&self.run.id),
        })
    }

    /// Stores `result`, announcing and logging a change. Returns false when this worker was
    /// stopped or replaced meanwhile.
    fn record(&self, pod: &Pod, result: ProbeResult) -> bool {
        let mut state = self.shared.lock();
        let Some(slot) = state
            .pods
            .get_mut(&self.pod_uid)
            .and_then(|p| p.workers.get_mut(&(self.run.name.clone(), self.probe)))
            .filter(|slot| slot.id == self.id)
        else {
            return false;
        };
        if slot.result == Some(result) {
            return true;
        }
        slot.result = Some(result);
        tracing::info!(
            pod_uid = self.pod_uid,
            namespace = pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod = pod.metadata.name.as_deref().unwrap_or_default(),
            container = self.run.name,
            container_id = self.run.id,
            restart_count = self.run.restart_count,
            probe = %self.probe,
            result = ?result,
            "probe result changed"
        );
        self.shared.announce(ProbeUpdate {
            pod_uid: self.pod_uid.clone(),
            container_name: self.run.name.clone(),
            container_id: self.run.id.clone(),
            probe: self.probe,
            result,
        });
        true
    }
}
