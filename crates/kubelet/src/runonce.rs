//! --runonce: run the static pods once and report. Deprecated upstream; kept here with our own
//! semantics. Success: every pod with restartPolicy Always is Running with all its containers
//! running, and every other pod (a run-to-completion pod) has Succeeded. Failure: any pod Failed,
//! cannot get its image, or has a container that exited non-zero. Either must happen within the
//! timeout. The pods are left as they are when the kubelet exits.

use crate::status::StatusManager;
use crate::status::generate::{FAILED, RUNNING, SUCCEEDED};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kubelet_sources::{PodOperation, PodUpdate, SourcesReady};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

pub const TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(200);
const IMAGE_FAILURES: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    Ok(String),
    Failed(String),
}

/// Judges one pod's status for --runonce; `run_to_completion` is restartPolicy Never or OnFailure.
pub fn verdict(status: Option<&PodStatus>, run_to_completion: bool) -> Verdict {
    let Some(s) = status else {
        return Verdict::Pending;
    };
    let phase = s.phase.as_deref().unwrap_or("Pending");
    let containers = s
        .init_container_statuses
        .iter()
        .flatten()
        .chain(s.container_statuses.iter().flatten());
    for c in containers {
        let state = c.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref())
            && let Some(r) = w.reason.as_deref().filter(|r| IMAGE_FAILURES.contains(r))
        {
            return Verdict::Failed(format!("container {} cannot get its image: {r}", c.name));
        }
        let exits = [
            state.and_then(|s| s.terminated.as_ref()),
            c.last_state.as_ref().and_then(|s| s.terminated.as_ref()),
        ];
        if let Some(t) = exits.into_iter().flatten().find(|t| t.exit_code != 0) {
            return Verdict::Failed(format!(
                "container {} exited with code {}",
                c.name, t.exit_code
            ));
        }
    }
    if phase == FAILED {
        let why = s
            .reason
            .clone()
            .unwrap_or_else(|| "a container failed".into());
        return Verdict::Failed(format!("Failed ({why})"));
    }
    let all_running = s
        .container_statuses
        .iter()
        .flatten()
        .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()));
    match phase {
        SUCCEEDED => Verdict::Ok(phase.to_string()),
        RUNNING if !run_to_completion && all_running => Verdict::Ok(phase.to_string()),
        _ => Verdict::Pending,
    }
}

/// Passes the sources' updates on to the sync loop and collects the pods of the first full read.
pub async fn collect_pods(
    updates: &mut UnboundedReceiver<PodUpdate>,
    forward: &UnboundedSender<PodUpdate>,
    ready: &SourcesReady,
) -> BTreeMap<String, Pod> {
    let mut pods = BTreeMap::new();
    let mut take = |u: PodUpdate| {
        for p in &u.pods {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            match u.op {
                PodOperation::Remove => pods.remove(&uid),
                _ => pods.insert(uid, p.clone()),
            };
        }
        let _ = forward.send(u);
    };
    loop {
        // A source is marked ready as it sends its snapshot, so by the time every source is,
        // their snapshots are queued: read those before leaving, or a fast source's pods are
        // missed and the run reports nothing.
        let all_ready = ready.all_ready();
        while let Ok(u) = updates.try_recv() {
            take(u);
        }
        if all_ready {
            break;
        }
        match tokio::time::timeout(POLL, updates.recv()).await {
            Ok(Some(u)) => take(u),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    pods
}

/// Waits for a verdict on every pod and prints one line per pod; true when all succeeded.
pub async fn wait(pods: &BTreeMap<String, Pod>, status: &StatusManager, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut verdicts: BTreeMap<&str, Verdict> = BTreeMap::new();
    loop {
        for (uid, pod) in pods.iter() {
            let policy = pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref())
                .unwrap_or("Always");
            verdicts.insert(uid, verdict(status.get(uid).as_ref(), policy != "Always"));
        }
        let pending = verdicts.values().any(|v| *v == Verdict::Pending);
        let failed = verdicts.values().any(|v| matches!(v, Verdict::Failed(_)));
        if !pending || failed || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let mut ok = true;
    for (uid, pod) in pods {
        let name = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        );
        let line = match &verdicts[uid.as_str()] {
            Verdict::Ok(phase) => format!("pod {name}: {phase}"),
            Verdict::Failed(why) => {
                ok = false;
                format!("pod {name}: failed: {why}")
            }
            Verdict::Pending => {
                ok = false;
                format!("pod {name}: failed: not running after {timeout:?}")
            }
        };
        println!("{line}");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: serde_json::Value) -> PodStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(None, false), Verdict::Pending);
        let running = status(json!({"phase": "Running", "containerStatuses": [
            {"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}));
        assert_eq!(
            verdict(Some(&running), false),
            Verdict::Ok("Running".into())
        );
        // A run-to-completion pod must finish.
        assert_eq!(verdict(Some(&running), true), Verdict::Pending);
        let done = status(json!({"phase": "Succeeded"}));
        assert_eq!(verdict(Some(&done), true), Verdict::Ok("Succeeded".into()));
        assert!(
            matches!(verdict(Some(&status(json!({"phase": "Failed", "reason": "OutOfcpu"}))), false), Verdict::Failed(m) if m.contains("OutOfcpu"))
        );
        let pulling = status(json!({"phase": "Pending", "containerStatuses": [
            {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImageNeverPull"}}}]}));
        assert!(
            matches!(verdict(Some(&pulling), false), Verdict::Failed(m) if m.contains("ErrImageNeverPull"))
        );
        let crashed = status(json!({"phase": "Running", "containerStatuses": [
            {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}]}));
        assert!(
            matches!(verdict(Some(&crashed), false), Verdict::Failed(m) if m.contains("code 1"))
        );
        assert_eq!(
            verdict(Some(&status(json!({"phase": "Pending"}))), false),
            Verdict::Pending
        );
    }

    #[tokio::test]
    async fn pods_sent_before_the_run_looks_are_collected() {
        let (mux, mut updates) = kubelet_sources::Mux::new();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }))
        .unwrap();
        // The source's whole read is in before collect_pods starts: ready already.
        mux.source("file").send_snapshot(vec![pod]);
        assert!(mux.ready().all_ready());
        let (forward, mut forwarded) = tokio::sync::mpsc::unbounded_channel();
        let pods = collect_pods(&mut updates, &forward, &mux.ready()).await;
        assert_eq!(pods.keys().collect::<Vec<_>>(), ["u1"]);
        assert_eq!(forwarded.try_recv().unwrap().pods.len(), 1);
    }
}
