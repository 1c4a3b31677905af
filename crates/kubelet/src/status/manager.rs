//! Holds the latest status of every pod, logs each change in one line, and, once started with an
//! API client, hands every change to the API syncer (see [`super::api_sync`]).

use crate::status::generate::{FAILED, RUNNING, SUCCEEDED};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kubelet_stats::KubeletMetrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Default)]
pub struct StatusManager {
    statuses: Mutex<HashMap<String, Entry>>,
    metrics: Option<Arc<KubeletMetrics>>,
    /// UIDs whose status changed, for the API syncer once it runs.
    api: OnceLock<UnboundedSender<String>>,
    /// Time each starting pod spent on its images, which the start SLI leaves out.
    image_times: Mutex<HashMap<String, std::time::Duration>>,
}

/// A pod's status as the kubelet computed it, numbered so the API syncer knows what it sent.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The pod's metadata: where its status goes in the API.
    pub meta: ObjectMeta,
    pub status: PodStatus,
    /// Bumped on every change.
    pub version: u64,
    /// The pod is stopped and what it held on the node released (upstream podIsFinished).
    pub finished: bool,
}

/// Upstream ContainerReasonStatusUnknown, for containers whose end was never observed.
const STATUS_UNKNOWN_REASON: &str = "ContainerStatusUnknown";
const STATUS_UNKNOWN_MESSAGE: &str =
    "The container could not be located when the pod was terminated";

/// When the kubelet first saw the pod (the config.seen annotation the sources set).
fn first_seen(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.metadata
        .annotations
        .as_ref()?
        .get("kubernetes.io/config.seen")?
        .parse()
        .ok()
}

/// A one-line summary of a status: phase, readiness, restarts and each waiting or terminated reason.
pub fn summary(status: &PodStatus) -> String {
    let containers = status.container_statuses.as_deref().unwrap_or(&[]);
    let ready = containers.iter().filter(|c| c.ready).count();
    let restarts: i32 = containers.iter().map(|c| c.restart_count).sum();
    let mut line = format!(
        "phase={} ready={ready}/{} restarts={restarts}",
        status.phase.as_deref().unwrap_or("Unknown"),
        containers.len()
    );
    if let Some(ip) = &status.pod_ip {
        line.push_str(&format!(" ip={ip}"));
    }
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(containers);
    for c in all {
        let st = c.state.as_ref();
        if let Some(w) = st.and_then(|s| s.waiting.as_ref()) {
            line.push_str(&format!(
                " {}=waiting:{}",
                c.name,
                w.reason.as_deref().unwrap_or("")
            ));
        } else if let Some(t) = st.and_then(|s| s.terminated.as_ref()) {
            line.push_str(&format!(
                " {}=terminated:{}({})",
                c.name,
                t.reason.as_deref().unwrap_or(""),
                t.exit_code
            ));
        }
    }
    line
}

impl StatusManager {
    /// Observes kubelet_pod_start_duration_seconds and kubelet_pod_start_sli_duration_seconds
    /// (without image time) as pods first reach Running.
    pub fn with_metrics(metrics: Arc<KubeletMetrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..Default::default()
        }
    }

    pub fn get(&self, uid: &str) -> Option<PodStatus> {
        self.statuses
            .lock()
            .unwrap()
            .get(uid)
            .map(|e| e.status.clone())
    }

    pub(crate) fn entry(&self, uid: &str) -> Option<Entry> {
        self.statuses.lock().unwrap().get(uid).cloned()
    }

    /// UIDs of every pod with a status.
    pub fn uids(&self) -> Vec<String> {
        self.statuses.lock().unwrap().keys().cloned().collect()
    }

    /// Stores the pod's new status; returns whether it changed.
    pub fn set(&self, pod: &Pod, status: PodStatus) -> bool {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut map = self.statuses.lock().unwrap();
        let old = map.get(&uid);
        if old.is_some_and(|old| same_ignoring_times(&old.status, &status)) {
            return false;
        }
        tracing::info!(
            pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or("")),
            pod_uid = %uid,
            "pod status changed: {}",
            summary(&status)
        );
        let was_running = old.and_then(|e| e.status.phase.as_deref()) == Some(RUNNING);
        if !was_running
            && status.phase.as_deref() == Some(RUNNING)
            && let (Some(metrics), Some(seen)) = (&self.metrics, first_seen(pod))
        {
            let since = k8s_openapi::jiff::Timestamp::now().duration_since(seen);
            let since = std::time::Duration::from_secs_f64(since.as_secs_f64().max(0.0));
            metrics.observe_pod_start(since);
            let images = self.image_times.lock().unwrap().remove(&uid);
            metrics.observe_pod_start_sli(since.saturating_sub(images.unwrap_or_default()));
        }
        let finished = old.is_some_and(|e| e.finished);
        self.store(&mut map, pod, status, finished);
        true
    }

    fn store(
        &self,
        map: &mut HashMap<String, Entry>,
        pod: &Pod,
        status: PodStatus,
        finished: bool,
    ) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let version = map.get(&uid).map_or(0, |e| e.version) + 1;
        let meta = ObjectMeta {
            managed_fields: None,
            ..pod.metadata.clone()
        };
        map.insert(
            uid.clone(),
            Entry {
                meta,
                status,
                version,
                finished,
            },
        );
        self.notify(uid);
    }

    fn notify(&self, uid: String) {
        if let Some(tx) = self.api.get() {
            let _ = tx.send(uid);
        }
    }

    /// The pod is stopped and everything it held on the node is released (upstream TerminatePod):
    /// containers never seen to end are reported terminated with ContainerStatusUnknown, a pod
    /// from the API that is not yet Succeeded or Failed becomes Failed (Succeeded when every
    /// container exited 0), and the status is marked finished, so the API syncer may delete a pod
    /// whose deletion was requested. `last` is the status before the pod's cleanup dropped it.
    pub fn finish(&self, pod: &Pod, last: Option<PodStatus>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut map = self.statuses.lock().unwrap();
        let mut status = map
            .get(&uid)
            .map(|e| e.status.clone())
            .or(last)
            .or_else(|| pod.status.clone())
            .unwrap_or_default();
        terminate_status(pod, &mut status);
        tracing::info!(pod_uid = %uid, "pod finished: {}", summary(&status));
        self.store(&mut map, pod, status, true);
    }

    /// Asks the API syncer to look at the pod again (its mirror pod was just made, say).
    pub fn resync(&self, uid: &str) {
        self.notify(uid.to_string());
    }

    /// Adds time a sync spent ensuring the pod's images.
    pub fn add_image_time(&self, uid: &str, time: std::time::Duration) {
        if !time.is_zero() {
            *self
                .image_times
                .lock()
                .unwrap()
                .entry(uid.to_string())
                .or_default() += time;
        }
    }

    pub fn remove(&self, uid: &str) {
        self.statuses.lock().unwrap().remove(uid);
        self.image_times.lock().unwrap().remove(uid);
        self.notify(uid.to_string());
    }

    /// Hands changes to an API syncer; false if one is already attached.
    pub(crate) fn attach_api(&self, tx: UnboundedSender<String>) -> bool {
        self.api.set(tx).is_ok()
    }
}

fn terminated_unknown() -> Option<ContainerState> {
    Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            reason: Some(STATUS_UNKNOWN_REASON.into()),
            message: Some(STATUS_UNKNOWN_MESSAGE.into()),
            exit_code: 137,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn is_terminated(c: &ContainerStatus) -> bool {
    c.state.as_ref().is_some_and(|s| s.terminated.is_some())
}

/// Upstream TerminatePod's defaulting, applied to the last status of a stopped pod.
fn terminate_status(pod: &Pod, status: &mut PodStatus) {
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if initialized {
        for c in status.container_statuses.iter_mut().flatten() {
            if !is_terminated(c) {
                c.state = terminated_unknown();
                c.ready = false;
            }
        }
    }
    // Init containers up to the last one that shows it started (all of them when none does) are
    // failures if their end was not seen (upstream initializedContainers).
    let inits = status
        .init_container_statuses
        .as_deref_mut()
        .unwrap_or_default();
    let started = inits
        .iter()
        .rposition(|c| {
            c.state.as_ref().is_none_or(|s| s.waiting.is_none())
                || c.last_state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some())
        })
        .map_or(inits.len(), |i| i + 1);
    for c in &mut inits[..started] {
        if !is_terminated(c) {
            c.state = terminated_unknown();
            c.ready = false;
        }
    }
    // Upstream leaves static pods in their phase (kubernetes#116484).
    if crate::pod_manager::is_static_pod(pod) {
        return;
    }
    match status.phase.as_deref() {
        Some(SUCCEEDED) | Some(FAILED) => {}
        _ => {
            let apps = status.container_statuses.as_deref().unwrap_or_default();
            let all_succeeded = !apps.is_empty()
                && apps.iter().all(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some_and(|t| t.exit_code == 0)
                });
            status.phase = Some(if all_succeeded { SUCCEEDED } else { FAILED }.into());
        }
    }
    let reason = if status.phase.as_deref() == Some(SUCCEEDED) {
        "PodCompleted"
    } else {
        "PodFailed"
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    for c in status.conditions.iter_mut().flatten() {
        if (c.type_ == "Ready" || c.type_ == "ContainersReady") && c.status == "True" {
            c.status = "False".into();
            c.reason = Some(reason.into());
            c.last_transition_time = Some(now.clone());
        }
    }
}

/// Condition transition times are regenerated each sync; a change is anything else.
fn same_ignoring_times(a: &PodStatus, b: &PodStatus) -> bool {
    let strip = |s: &PodStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
            c.last_probe_time = None;
        }
        s
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStateRunning, ContainerStateWaiting, PodCondition};

    fn pod(source: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                         "annotations": {"kubernetes.io/config.source": source}},
        }))
        .unwrap()
    }

    fn container(name: &str, state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(state),
            ready: true,
            ..Default::default()
        }
    }

    fn running_status() -> PodStatus {
        let running = ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        };
        PodStatus {
            phase: Some(RUNNING.into()),
            conditions: Some(vec![
                PodCondition {
                    type_: "Initialized".into(),
                    status: "True".into(),
                    ..Default::default()
                },
                PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                },
            ]),
            init_container_statuses: Some(vec![container(
                "init",
                ContainerState {
                    terminated: Some(ContainerStateTerminated::default()),
                    ..Default::default()
                },
            )]),
            container_statuses: Some(vec![
                container("a", running),
                container(
                    "b",
                    ContainerState {
                        waiting: Some(ContainerStateWaiting::default()),
                        ..Default::default()
                    },
                ),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn a_finished_api_pod_is_failed_with_unknown_container_ends() {
        let manager = StatusManager::default();
        let pod = pod("api");
        manager.set(&pod, running_status());
        manager.finish(&pod, None);
        let entry = manager.entry("u1").unwrap();
        assert!(entry.finished);
        assert_eq!(entry.version, 2);
        let status = entry.status;
        assert_eq!(status.phase.as_deref(), Some(FAILED));
        for c in status.container_statuses.unwrap() {
            let t = c.state.unwrap().terminated.unwrap();
            assert_eq!(t.reason.as_deref(), Some(STATUS_UNKNOWN_REASON));
            assert_eq!(t.exit_code, 137);
            assert!(!c.ready);
        }
        let ready = status.conditions.unwrap();
        let ready = ready.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodFailed"))
        );
        // A later status does not undo the finish.
        manager.set(&pod, running_status());
        assert!(manager.entry("u1").unwrap().finished);
    }

    #[test]
    fn a_finished_static_pod_keeps_its_phase_and_the_last_status_survives_cleanup() {
        let manager = StatusManager::default();
        let pod = pod("file");
        manager.set(&pod, running_status());
        let last = manager.get("u1");
        manager.remove("u1");
        manager.finish(&pod, last);
        assert_eq!(manager.get("u1").unwrap().phase.as_deref(), Some(RUNNING));
        assert!(manager.entry("u1").unwrap().finished);
    }
}
