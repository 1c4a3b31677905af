//! Graceful node shutdown (upstream nodeshutdown manager): on logind's PrepareForShutdown the
//! kubelet stops the pods, ordinary ones first, critical ones last, each group within its budget,
//! reports them Failed with reason Terminated, and then lets the shutdown proceed.

use crate::pod_manager::PodManager;
use crate::pod_workers::{PodWorkers, WorkerState};
use crate::status::StatusManager;
use crate::status::generate::FAILED;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kubelet_nodeshutdown::{
    DISRUPTION_TARGET_CONDITION, DISRUPTION_TARGET_REASON, NODE_SHUTDOWN_MESSAGE,
    NODE_SHUTDOWN_REASON, ShutdownWatcher, pod_grace_period, shutdown_groups,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(100);

/// Marks a pod the kubelet itself stops (node shutdown, eviction) Failed with `reason` and
/// `message` and the DisruptionTarget condition, before its worker stops it.
pub(crate) fn mark_disrupted(pod: &Pod, status: &StatusManager, reason: &str, message: &str) {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let mut s = status.get(uid).unwrap_or_default();
    s.phase = Some(FAILED.into());
    s.reason = Some(reason.into());
    s.message = Some(message.into());
    let conditions = s.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != DISRUPTION_TARGET_CONDITION);
    conditions.push(PodCondition {
        type_: DISRUPTION_TARGET_CONDITION.into(),
        status: "True".into(),
        reason: Some(DISRUPTION_TARGET_REASON.into()),
        message: Some(message.into()),
        last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
        ..Default::default()
    });
    status.set(pod, s);
}

/// Stops one group of pods and waits for them, at most `budget`.
async fn stop_group(
    group: &[&Pod],
    budget: Duration,
    workers: &PodWorkers,
    status: &StatusManager,
) {
    for pod in group {
        mark_disrupted(pod, status, NODE_SHUTDOWN_REASON, NODE_SHUTDOWN_MESSAGE);
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        workers.terminate(uid, Some(pod_grace_period(pod, budget)), false);
    }
    let deadline = Instant::now() + budget;
    let done = |p: &&&Pod| {
        let uid = p.metadata.uid.as_deref().unwrap_or_default();
        matches!(workers.state(uid), None | Some(WorkerState::Terminated))
    };
    while !group.iter().all(|p| done(&p)) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
}

/// Handles shutdowns until the bus goes away. `shutting_down` tells admission to refuse new pods.
pub async fn run(
    mut watcher: ShutdownWatcher,
    pods: PodManager,
    workers: PodWorkers,
    status: Arc<StatusManager>,
) {
    loop {
        let budget = match watcher.next_shutdown().await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("graceful node shutdown is no longer watched: {e}");
                return;
            }
        };
        tracing::info!(?budget, "shutdown manager detected shutdown event");
        let all = pods.pods();
        let groups = shutdown_groups(&all);
        stop_group(&groups.non_critical, budget.non_critical, &workers, &status).await;
        stop_group(&groups.critical, budget.critical, &workers, &status).await;
        tracing::info!("shutdown manager finished stopping pods; releasing the inhibitor lock");
        watcher.release();
    }
}
