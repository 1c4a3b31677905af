//! Holds the latest status of every pod and logs each change in one line.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kubelet_stats::KubeletMetrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct StatusManager {
    statuses: Mutex<HashMap<String, PodStatus>>,
    metrics: Option<Arc<KubeletMetrics>>,
}

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
    /// Observes kubelet_pod_start_duration_seconds as pods first reach Running.
    pub fn with_metrics(metrics: Arc<KubeletMetrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..Default::default()
        }
    }

    pub fn get(&self, uid: &str) -> Option<PodStatus> {
        self.statuses.lock().unwrap().get(uid).cloned()
    }

    /// Stores the pod's new status; returns whether it changed.
    pub fn set(&self, pod: &Pod, status: PodStatus) -> bool {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut map = self.statuses.lock().unwrap();
        if map
            .get(&uid)
            .is_some_and(|old| same_ignoring_times(old, &status))
        {
            return false;
        }
        tracing::info!(
            pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or("")),
            pod_uid = %uid,
            "pod status changed: {}",
            summary(&status)
        );
        let was_running = map.get(&uid).and_then(|s| s.phase.as_deref()) == Some("Running");
        if !was_running
            && status.phase.as_deref() == Some("Running")
            && let (Some(metrics), Some(seen)) = (&self.metrics, first_seen(pod))
        {
            let since = k8s_openapi::jiff::Timestamp::now().duration_since(seen);
            metrics.observe_pod_start(std::time::Duration::from_secs_f64(
                since.as_secs_f64().max(0.0),
            ));
        }
        map.insert(uid, status);
        true
    }

    pub fn remove(&self, uid: &str) {
        self.statuses.lock().unwrap().remove(uid);
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
