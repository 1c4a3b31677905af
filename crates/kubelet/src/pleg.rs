//! The pod lifecycle event generator (upstream pleg/): notices runtime state changes and names the
//! pods they belong to, so their workers sync at once. It relists every second; where the
//! runtime streams CRI container events (the built-in runtime, containerd 1.7+) it follows them
//! ([`events`]) and relists only as a safety net, and at once whenever the stream starts or
//! breaks. A woken worker reads the pod's state from the runtime itself: there is no pod cache
//! to update, so an event needs to name its pod only.

mod events;

use kubelet_cri::Runtime;
use kubelet_kuberuntime::labels::POD_UID_LABEL;
use kubelet_stats::KubeletMetrics;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

pub const RELIST_PERIOD: Duration = Duration::from_secs(1);
/// With an event stream, relisting only catches what the stream missed (upstream evented PLEG).
pub const EVENTED_RELIST_PERIOD: Duration = Duration::from_secs(300);

/// What one relist saw: the state of every container and sandbox, by id, with its pod UID.
#[derive(Debug, Default, PartialEq, Eq)]
struct Snapshot {
    entries: HashMap<String, (String, i32)>,
}

impl Snapshot {
    /// UIDs of the pods with anything new, gone or changed since `old`.
    fn changed_pods(&self, old: &Snapshot) -> HashSet<String> {
        let mut pods = HashSet::new();
        for (id, (uid, state)) in &self.entries {
            if old.entries.get(id).is_none_or(|(_, s)| s != state) {
                pods.insert(uid.clone());
            }
        }
        for (id, (uid, _)) in &old.entries {
            if !self.entries.contains_key(id) {
                pods.insert(uid.clone());
            }
        }
        pods
    }
}

pub struct Pleg {
    runtime: Arc<dyn Runtime>,
    tx: mpsc::UnboundedSender<String>,
    evented: Arc<AtomicBool>,
    metrics: Option<Arc<KubeletMetrics>>,
}

impl Pleg {
    /// Events are the UIDs of pods that changed.
    pub fn new(runtime: Arc<dyn Runtime>) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                runtime,
                tx,
                evented: Arc::default(),
                metrics: None,
            },
            rx,
        )
    }

    /// Observes kubelet_pleg_relist_duration_seconds and kubelet_pleg_relist_interval_seconds.
    pub fn with_metrics(mut self, metrics: Arc<KubeletMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    async fn relist(&self) -> Result<Snapshot, kubelet_cri::CriError> {
        let mut entries = HashMap::new();
        for sb in self.runtime.list_pod_sandbox(None).await? {
            if let Some(uid) = sb.labels.get(POD_UID_LABEL) {
                entries.insert(sb.id, (uid.clone(), sb.state));
            }
        }
        for c in self.runtime.list_containers(None).await? {
            if let Some(uid) = c.labels.get(POD_UID_LABEL) {
                entries.insert(c.id, (uid.clone(), c.state));
            }
        }
        Ok(Snapshot { entries })
    }

    /// Runs until the receiver is dropped.
    pub async fn run(self) {
        let relist_now = Arc::new(Notify::new());
        let follower = events::Follower {
            tx: self.tx.clone(),
            evented: self.evented.clone(),
            relist_now: relist_now.clone(),
            metrics: self.metrics.clone(),
        };
        let runtime = self.runtime.clone();
        let events = tokio::spawn(follower.run(move || {
            let runtime = runtime.clone();
            async move { runtime.container_events().await }
        }));
        let mut last = Snapshot::default();
        let mut since_relist = Duration::ZERO;
        let mut last_relist: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(RELIST_PERIOD) => {
                    since_relist += RELIST_PERIOD;
                    let period = if self.evented.load(Ordering::Relaxed) {
                        EVENTED_RELIST_PERIOD
                    } else {
                        RELIST_PERIOD
                    };
                    if since_relist < period {
                        continue;
                    }
                }
                // The event stream began or broke: what it did not say is learnt now.
                () = relist_now.notified() => {}
            }
            since_relist = Duration::ZERO;
            let started = tokio::time::Instant::now();
            if let (Some(m), Some(last)) = (&self.metrics, last_relist) {
                m.observe_pleg_relist_interval(started - last);
            }
            last_relist = Some(started);
            let relisted = self.relist().await;
            if let Some(m) = &self.metrics {
                m.observe_pleg_relist(started.elapsed());
            }
            match relisted {
                Ok(snapshot) => {
                    for uid in snapshot.changed_pods(&last) {
                        if self.tx.send(uid).is_err() {
                            events.abort();
                            return;
                        }
                    }
                    last = snapshot;
                }
                Err(e) => tracing::error!("PLEG relist failed: {e}"),
            }
            if self.tx.is_closed() {
                events.abort();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_diff_names_changed_pods() {
        let snap = |v: &[(&str, &str, i32)]| Snapshot {
            entries: v
                .iter()
                .map(|(id, uid, s)| (id.to_string(), (uid.to_string(), *s)))
                .collect(),
        };
        let old = snap(&[("c1", "a", 1), ("c2", "b", 1), ("c3", "c", 1)]);
        let new = snap(&[("c1", "a", 1), ("c2", "b", 2), ("c4", "d", 0)]);
        let mut got: Vec<_> = new.changed_pods(&old).into_iter().collect();
        got.sort();
        assert_eq!(got, vec!["b", "c", "d"]);
        assert!(new.changed_pods(&new).is_empty());
    }
}
