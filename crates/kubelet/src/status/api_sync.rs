//! The status manager's API side (upstream status_manager.go syncBatch and syncPod): a
//! background task writes each pod's status to its pod in the API (its mirror pod for a static
//! pod), only when it differs from the API's, and deletes a pod whose deletion was requested once
//! the kubelet has finished with it.
//!
//! The sync loop never waits on the API: a status change only sends the pod's UID on a channel;
//! the task reads the latest status when it gets to the pod, so changes coalesce per pod. A
//! failed write is retried with a per-pod back-off (0.5 s doubling to 10 s) and, in any case, by
//! the reconcile every 10 s, which also catches an API status that drifted from the kubelet's.

use crate::pod_manager::{PodManager, is_api_pod, is_mirror_pod, is_mirror_pod_of, is_static_pod};
use crate::status::StatusManager;
use crate::status::manager::Entry;
use crate::status::merge::{is_terminal, merge_patch, merge_pod_status};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often every status is compared with the API's (upstream syncPeriod).
pub const SYNC_PERIOD: Duration = Duration::from_secs(10);
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// A patch that lost a race with another writer is tried again at once, this many times in all.
const CONFLICT_ATTEMPTS: usize = 3;

#[derive(Debug, Error)]
pub enum StatusSyncError {
    #[error("cannot read pod {pod}: {source}")]
    Get { pod: String, source: kube::Error },
    #[error("cannot patch the status of pod {pod}: {source}")]
    Patch { pod: String, source: kube::Error },
    #[error("cannot delete pod {pod}: {source}")]
    Delete { pod: String, source: kube::Error },
    #[error("cannot encode the status of pod {pod}: {source}")]
    Encode {
        pod: String,
        source: serde_json::Error,
    },
}

impl StatusManager {
    /// Starts writing pod statuses to the API server through `client`. `pods` is the kubelet's
    /// pod manager: the periodic reconcile compares each status with the pod (or mirror pod) the
    /// API source last delivered. Call once; a second call returns None.
    pub fn start_api_sync(
        self: &Arc<Self>,
        client: kube::Client,
        pods: PodManager,
    ) -> Option<JoinHandle<()>> {
        let (tx, rx) = unbounded_channel();
        if !self.attach_api(tx) {
            return None;
        }
        // Statuses set before the syncer started.
        for uid in self.uids() {
            self.resync(&uid);
        }
        let syncer = ApiSyncer {
            manager: Arc::downgrade(self),
            client,
            pods,
            synced: HashMap::new(),
            retry: HashMap::new(),
        };
        Some(tokio::spawn(syncer.run(rx)))
    }
}

/// What the API has of a pod, as of the syncer's last write or read.
struct Synced {
    version: u64,
    deleted: bool,
}

struct Retry {
    at: Instant,
    delay: Duration,
}

struct ApiSyncer {
    manager: Weak<StatusManager>,
    client: kube::Client,
    pods: PodManager,
    /// By the kubelet's pod UID.
    synced: HashMap<String, Synced>,
    retry: HashMap<String, Retry>,
}

/// Whether the API server answered with this HTTP status code.
pub(crate) fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn pod_name(entry: &Entry) -> (String, String) {
    (
        entry
            .meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        entry.meta.name.clone().unwrap_or_default(),
    )
}

impl ApiSyncer {
    async fn run(mut self, mut rx: UnboundedReceiver<String>) {
        let mut tick = tokio::time::interval(SYNC_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending = BTreeSet::new();
        loop {
            let next_retry = self.retry.values().map(|r| r.at).min();
            tokio::select! {
                uid = rx.recv() => match uid {
                    Some(uid) => { pending.insert(uid); }
                    None => return,
                },
                _ = tick.tick() => {
                    let Some(manager) = self.manager.upgrade() else { return };
                    pending.extend(self.due_for_reconcile(&manager));
                }
                _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() => {}
            }
            while let Ok(uid) = rx.try_recv() {
                pending.insert(uid);
            }
            let now = Instant::now();
            pending.extend(
                self.retry
                    .iter()
                    .filter(|(_, r)| r.at <= now)
                    .map(|(uid, _)| uid.clone()),
            );
            // A pod backing off waits for its turn; its latest status is sent then.
            let due: Vec<String> = pending
                .iter()
                .filter(|uid| self.retry.get(*uid).is_none_or(|r| r.at <= now))
                .cloned()
                .collect();
            for uid in due {
                pending.remove(&uid);
                let Some(manager) = self.manager.upgrade() else {
                    return;
                };
                match self.sync_pod(&manager, &uid).await {
                    Ok(()) => {
                        self.retry.remove(&uid);
                    }
                    Err(e) => {
                        let delay = self
                            .retry
                            .get(&uid)
                            .map_or(RETRY_MIN, |r| (r.delay * 2).min(RETRY_MAX));
                        tracing::warn!(pod_uid = %uid, retry_in = ?delay, "failed to update the pod status: {e}");
                        self.retry.insert(
                            uid,
                            Retry {
                                at: Instant::now() + delay,
                                delay,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Pods whose status is newer than what was written, whose API status drifted from the
    /// kubelet's (upstream needsReconcile), or that wait for their final deletion.
    fn due_for_reconcile(&mut self, manager: &StatusManager) -> Vec<String> {
        let uids: BTreeSet<String> = manager.uids().into_iter().collect();
        self.synced.retain(|uid, _| uids.contains(uid));
        self.retry.retain(|uid, _| uids.contains(uid));
        let mut due = Vec::new();
        for uid in uids {
            let Some(entry) = manager.entry(&uid) else {
                continue;
            };
            let synced = self.synced.get(&uid);
            if synced.is_none_or(|s| s.version < entry.version) {
                due.push(uid);
                continue;
            }
            let Some((_, api_status)) = self.pods.api_status(&uid) else {
                continue;
            };
            let merged = merge_pod_status(&api_status, &entry.status);
            let drifted = merged != api_status;
            let deleting = entry.finished
                && synced.is_some_and(|s| !s.deleted)
                && self
                    .pods
                    .get(&uid)
                    .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
            if drifted || deleting {
                tracing::debug!(pod_uid = %uid, drifted, deleting, "pod status needs a reconcile");
                due.push(uid);
            }
        }
        due
    }

    /// Writes one pod's latest status (upstream syncPod).
    async fn sync_pod(
        &mut self,
        manager: &StatusManager,
        uid: &str,
    ) -> Result<(), StatusSyncError> {
        let Some(entry) = manager.entry(uid) else {
            self.synced.remove(uid);
            return Ok(());
        };
        let (namespace, name) = pod_name(&entry);
        let full = format!("{namespace}/{name}");
        let local = Pod {
            metadata: entry.meta.clone(),
            ..Default::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let mut attempt = 0;
        let current = loop {
            attempt += 1;
            let pod = api
                .get_opt(&name)
                .await
                .map_err(|source| StatusSyncError::Get {
                    pod: full.clone(),
                    source,
                })?;
            if is_static_pod(&local) && !pod.as_ref().is_some_and(|p| is_mirror_pod_of(p, &local)) {
                // The mirror pod reconciler makes it and asks for a resync; the reconcile
                // retries meanwhile.
                tracing::debug!(pod = %full, pod_uid = %uid, "static pod does not have a corresponding mirror pod; skipping");
                return Ok(());
            }
            let Some(pod) = pod else {
                // A deleted pod's status goes when the pod leaves the kubelet.
                tracing::debug!(pod = %full, pod_uid = %uid, "pod does not exist on the server");
                self.mark(uid, &entry, false);
                return Ok(());
            };
            let api_uid = pod.metadata.uid.clone().unwrap_or_default();
            if !is_static_pod(&local) && api_uid != uid {
                tracing::info!(pod = %full, pod_uid = %uid, api_uid = %api_uid, "pod was deleted and then recreated, skipping status update");
                self.mark(uid, &entry, false);
                return Ok(());
            }
            let old = pod.status.clone().unwrap_or_default();
            let merged = merge_pod_status(&old, &entry.status);
            let encode = |source| StatusSyncError::Encode {
                pod: full.clone(),
                source,
            };
            let old_json = serde_json::to_value(&old).map_err(encode)?;
            let new_json = serde_json::to_value(&merged).map_err(encode)?;
            let Some(diff) = merge_patch(&old_json, &new_json) else {
                tracing::debug!(pod = %full, pod_uid = %uid, version = entry.version, "status for pod is up-to-date");
                break pod;
            };
            // The UID and resourceVersion make the write conditional: never onto a recreated
            // pod, never over a status someone changed since the read.
            let patch = json!({
                "metadata": {
                    "uid": api_uid,
                    "resourceVersion": pod.metadata.resource_version,
                },
                "status": diff,
            });
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(updated) => {
                    tracing::debug!(pod = %full, pod_uid = %uid, version = entry.version, %patch, "status for pod updated successfully");
                    break updated;
                }
                Err(e) if is_code(&e, 409) && attempt < CONFLICT_ATTEMPTS => continue,
                Err(e) if is_code(&e, 404) => {
                    self.mark(uid, &entry, false);
                    return Ok(());
                }
                Err(source) => {
                    return Err(StatusSyncError::Patch {
                        pod: full.clone(),
                        source,
                    });
                }
            }
        };
        if !can_be_deleted(&current, &local, &entry) {
            self.mark(uid, &entry, false);
            return Ok(());
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            // Never a newer pod of the same name.
            preconditions: Some(Preconditions {
                uid: current.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %full, pod_uid = %uid, "pod fully terminated and removed from etcd");
            }
            Err(e) if is_code(&e, 404) || is_code(&e, 409) => {}
            Err(source) => {
                self.mark(uid, &entry, false);
                return Err(StatusSyncError::Delete { pod: full, source });
            }
        }
        self.mark(uid, &entry, true);
        Ok(())
    }

    fn mark(&mut self, uid: &str, entry: &Entry, deleted: bool) {
        self.synced.insert(
            uid.to_string(),
            Synced {
                version: entry.version,
                deleted,
            },
        );
    }
}

/// Upstream canBeDeleted: an API pod whose deletion was requested, terminal in the API, that the
/// kubelet finished with (stopped, volumes, cgroup and containers gone). Never a mirror pod.
fn can_be_deleted(api_pod: &Pod, local: &Pod, entry: &Entry) -> bool {
    api_pod.metadata.deletion_timestamp.is_some()
        && !is_mirror_pod(api_pod)
        && is_api_pod(local)
        && is_terminal(api_pod.status.as_ref().and_then(|s| s.phase.as_deref()))
        && entry.finished
}
