//! The kubelet's per-pod operations, run by the pod's worker (upstream Kubelet.SyncPod,
//! SyncTerminatingPod and SyncTerminatedPod): dirs, cgroup, volumes, runtime sync, status; stop;
//! and the final cleanup that leaves nothing of the pod behind.

use crate::cm::cgroups::PodCgroups;
use crate::probes::Probes;
use crate::status::StatusManager;
use crate::status::generate::{self, StatusInput};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kubelet_kuberuntime::events::{EventRecorder, EventType, reason};
use kubelet_kuberuntime::manager::RuntimeManager;
use kubelet_kuberuntime::runtime_status::PodRuntimeStatus;
use kubelet_kuberuntime::sync::{SyncResult, Waiting};
use kubelet_stats::KubeletMetrics;
use kubelet_volumes::VolumeManager;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How soon a pod whose sync failed is tried again (upstream workerBackOffPeriod).
pub const ERROR_RETRY: Duration = Duration::from_secs(10);

pub struct PodSyncer {
    pub runtime: Arc<RuntimeManager>,
    pub volumes: Arc<VolumeManager>,
    pub cgroups: PodCgroups,
    pub status: Arc<StatusManager>,
    pub events: Arc<dyn EventRecorder>,
    pub pods_dir: PathBuf,
    pub pod_logs_dir: PathBuf,
    pub host_ip: Option<String>,
    pub sync_frequency: Duration,
    pub probes: Probes,
    pub metrics: Arc<KubeletMetrics>,
}

/// What a sync tells the pod's worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOutcome {
    pub next_sync: Duration,
    /// The pod reached Succeeded or Failed: it is stopped and never runs again.
    pub terminal: bool,
}

pub struct PodRef<'a> {
    pub uid: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
}

impl<'a> PodRef<'a> {
    pub fn of(pod: &'a Pod) -> Self {
        Self {
            uid: pod.metadata.uid.as_deref().unwrap_or_default(),
            name: pod.metadata.name.as_deref().unwrap_or_default(),
            namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        }
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

impl PodSyncer {
    fn pod_error(message: String) -> SyncResult {
        SyncResult {
            pod_error: Some(Waiting {
                reason: "ContainerCreating".into(),
                message,
            }),
            ..Default::default()
        }
    }

    /// How long the pod may still be active (activeDeadlineSeconds, counted from its start time).
    fn deadline_left(&self, pod: &Pod) -> Option<Duration> {
        let deadline = pod.spec.as_ref()?.active_deadline_seconds?;
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let started = self
            .status
            .get(uid)
            .and_then(|s| s.start_time)
            .map(|t| t.0)?;
        let active = k8s_openapi::jiff::Timestamp::now().duration_since(started);
        let left = deadline.max(0) as f64 - active.as_secs_f64();
        Some(Duration::from_secs_f64(left.max(0.0)))
    }

    /// Fails a pod past its activeDeadlineSeconds, as upstream: phase Failed, reason
    /// DeadlineExceeded; the worker then stops it.
    fn fail_past_deadline(&self, pod: &Pod) {
        let message = "Pod was active on the node longer than the specified deadline";
        self.events
            .event(pod, EventType::Normal, "DeadlineExceeded", message);
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let mut status = self.status.get(uid).unwrap_or_default();
        status.phase = Some(generate::FAILED.into());
        status.reason = Some("DeadlineExceeded".into());
        status.message = Some(message.into());
        self.status.set(pod, status);
    }

    /// One sync of a pod that should run.
    pub async fn sync(&self, pod: &Pod) -> SyncOutcome {
        let p = PodRef::of(pod);
        if self.deadline_left(pod).is_some_and(|left| left.is_zero()) {
            self.fail_past_deadline(pod);
            return SyncOutcome {
                next_sync: self.sync_frequency,
                terminal: true,
            };
        }
        let pod_dir = self.pods_dir.join(p.uid);
        let prepared = std::fs::create_dir_all(pod_dir.join("containers"))
            .and_then(|_| std::fs::create_dir_all(pod_dir.join("volumes")))
            .and_then(|_| std::fs::create_dir_all(pod_dir.join("plugins")))
            .map_err(|e| format!("cannot create the pod directory {}: {e}", pod_dir.display()))
            .and_then(|_| {
                self.cgroups
                    .ensure(pod)
                    .map_err(|e| format!("cannot create the pod cgroup: {e}"))
            });
        let result = match prepared {
            Err(message) => {
                tracing::error!(pod_uid = p.uid, "{message}");
                Self::pod_error(message)
            }
            Ok(()) => match self.volumes.mount_pod_volumes(pod).await {
                Err(e) => {
                    let message = format!("Unable to attach or mount volumes: {e}");
                    self.events
                        .event(pod, EventType::Warning, reason::FAILED_MOUNT, &message);
                    Self::pod_error(message)
                }
                Ok(volumes) => {
                    // A failed refresh keeps the volume's last contents; the pod runs on.
                    for (volume, cause) in volumes.update_errors() {
                        let message =
                            format!("MountVolume.SetUp failed for volume \"{volume}\" : {cause}");
                        self.events
                            .event(pod, EventType::Warning, reason::FAILED_MOUNT, &message);
                    }
                    match self.runtime.sync_pod(pod, &volumes, &self.probes).await {
                        Ok(r) => {
                            if r.sandbox_created {
                                self.metrics.inc_started_pods();
                            }
                            self.status.add_image_time(p.uid, r.image_time);
                            r
                        }
                        Err(e) => {
                            tracing::error!(pod_uid = p.uid, "pod sync failed: {e}");
                            Self::pod_error(format!("container runtime: {e}"))
                        }
                    }
                }
            },
        };

        let runtime_status = match self.runtime.pod_status(p.uid, p.name, p.namespace).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(pod_uid = p.uid, "cannot read the pod's runtime status: {e}");
                return SyncOutcome {
                    next_sync: ERROR_RETRY,
                    terminal: false,
                };
            }
        };
        self.probes.sync_pod(pod, &self.runtime, &runtime_status);
        let status = self.update_status(pod, &runtime_status, &result);
        if let Err(e) = self.runtime.gc_pod(&runtime_status).await {
            tracing::warn!(
                pod_uid = p.uid,
                "cannot remove the pod's dead containers: {e}"
            );
        }
        let phase = status.phase.as_deref().unwrap_or_default();
        let terminal = phase == generate::SUCCEEDED || phase == generate::FAILED;
        let next_sync = result.retry_after.unwrap_or(if result.is_ok() {
            self.sync_frequency
        } else {
            ERROR_RETRY
        });
        // Come back when the deadline passes; the first sync sets the start time it counts from.
        let next_sync = match self.deadline_left(pod) {
            Some(left) => next_sync.min(left),
            None => next_sync,
        };
        SyncOutcome {
            next_sync,
            terminal,
        }
    }

    fn update_status(
        &self,
        pod: &Pod,
        rt: &PodRuntimeStatus,
        result: &SyncResult,
    ) -> k8s_openapi::api::core::v1::PodStatus {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let previous = self.status.get(uid);
        let status = generate::generate(&StatusInput {
            pod,
            runtime: rt,
            sync: result,
            runtime_name: self.runtime.runtime_name(),
            host_ip: self.host_ip.as_deref(),
            previous: previous.as_ref(),
            now: now(),
            probes: &self.probes,
        });
        self.status.set(pod, status.clone());
        status
    }

    /// Stops the pod's containers and sandbox with the grace period; keeps them for their status
    /// and logs until cleanup.
    pub async fn terminate(&self, pod: &Pod, grace: Option<Duration>) {
        let p = PodRef::of(pod);
        let rt = match self.runtime.pod_status(p.uid, p.name, p.namespace).await {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(
                    pod_uid = p.uid,
                    "cannot read the pod's runtime status to stop it: {e}"
                );
                return;
            }
        };
        if let Err(e) = self
            .runtime
            .kill_pod_containers(Some(pod), &rt, grace)
            .await
        {
            tracing::error!(pod_uid = p.uid, "cannot stop the pod: {e}");
        }
        if let Ok(rt) = self.runtime.pod_status(p.uid, p.name, p.namespace).await {
            self.update_status(pod, &rt, &SyncResult::default());
        }
    }

    /// Removes everything of the pod: containers, sandboxes, volumes, data dir, cgroup, log dir and
    /// status. Works from the UID alone, so it also cleans orphans after a restart. Returns the
    /// first failure; a later call retries what is left.
    pub async fn cleanup(&self, p: PodRef<'_>, grace: Option<Duration>) -> Result<(), String> {
        let rt = self
            .runtime
            .pod_status(p.uid, p.name, p.namespace)
            .await
            .map_err(|e| e.to_string())?;
        self.runtime
            .kill_pod_containers(None, &rt, grace)
            .await
            .map_err(|e| e.to_string())?;
        self.runtime
            .remove_pod(&rt)
            .await
            .map_err(|e| e.to_string())?;
        self.volumes
            .tear_down_pod(p.uid)
            .await
            .map_err(|e| e.to_string())?;
        self.cgroups
            .remove(p.uid)
            .map_err(|e| format!("cannot remove the pod cgroup: {e}"))?;
        remove_pod_log_dirs(&self.pod_logs_dir, p.uid)
            .map_err(|e| format!("cannot remove the pod log directory: {e}"))?;
        self.probes.remove_pod(p.uid);
        self.status.remove(p.uid);
        tracing::info!(pod_uid = p.uid, pod = %format!("{}/{}", p.namespace, p.name), "pod cleaned up");
        Ok(())
    }

    /// The pod's deletion was requested in the API and its worker stopped it: removes all of it
    /// from the node (upstream SyncTerminatedPod), then marks its status finished, so the status
    /// manager deletes it from the API.
    pub async fn finish_deleted(&self, pod: &Pod) -> Result<(), String> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let last = self.status.get(uid);
        self.cleanup(PodRef::of(pod), Some(Duration::ZERO)).await?;
        self.status.finish(pod, last);
        Ok(())
    }
}

/// Removes POD_LOGS_DIR/<ns>_<name>_<uid> for the UID, whatever the name.
fn remove_pod_log_dirs(dir: &std::path::Path, uid: &str) -> std::io::Result<()> {
    let suffix = format!("_{uid}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(&suffix) {
            std::fs::remove_dir_all(e.path())?;
        }
    }
    Ok(())
}
