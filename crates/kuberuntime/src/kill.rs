//! Stopping and removing a pod's containers and sandboxes (upstream KillPod, killContainer and the
//! per-pod part of container GC).

use crate::events::{EventType, reason};
use crate::manager::RuntimeManager;
use crate::runtime_status::{ContainerState, PodRuntimeStatus};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kubelet_cri::CriError;
use std::collections::HashSet;
use std::time::Duration;

/// The runtime always gets at least this long to stop a container (upstream minimumGracePeriodInSeconds).
pub const MIN_GRACE_PERIOD: Duration = Duration::from_secs(2);
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

impl RuntimeManager {
    /// The grace period to stop the pod's containers with: the override, else the deletion grace
    /// period, else the spec's; never below the minimum.
    pub fn grace_period(&self, pod: Option<&Pod>, grace_override: Option<Duration>) -> Duration {
        let from_pod = pod.and_then(|p| {
            p.metadata
                .deletion_grace_period_seconds
                .or_else(|| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
                .map(|s| Duration::from_secs(s.max(0) as u64))
        });
        grace_override
            .or(from_pod)
            .unwrap_or(DEFAULT_GRACE_PERIOD)
            .max(MIN_GRACE_PERIOD)
    }

    pub(crate) async fn stop_container(
        &self,
        id: &str,
        name: &str,
        grace: Duration,
    ) -> Result<(), CriError> {
        tracing::debug!(
            container = name,
            container_id = id,
            ?grace,
            "stopping container"
        );
        match self.runtime.stop_container(id, grace).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Stops every running container of the pod in parallel, then its ready sandboxes.
    pub async fn kill_pod_containers(
        &self,
        pod: Option<&Pod>,
        status: &PodRuntimeStatus,
        grace_override: Option<Duration>,
    ) -> Result<(), CriError> {
        let running: Vec<_> = status.running_containers().collect();
        let stops = running.iter().map(|c| async {
            // Without the spec (an orphan), the grace period comes from the container's annotation.
            let grace = match pod {
                Some(_) => self.grace_period(pod, grace_override),
                None => grace_override
                    .or(c
                        .info
                        .termination_grace_period
                        .map(|s| Duration::from_secs(s.max(0) as u64)))
                    .unwrap_or(DEFAULT_GRACE_PERIOD)
                    .max(MIN_GRACE_PERIOD),
            };
            if let Some(p) = pod {
                self.events.event(
                    p,
                    EventType::Normal,
                    reason::KILLING,
                    &format!("Stopping container {}", c.name),
                );
            }
            self.stop_container(&c.id, &c.name, grace).await
        });
        for r in join_all(stops).await {
            r?;
        }
        for sb in status.sandboxes.iter().filter(|s| s.ready) {
            match self.runtime.stop_pod_sandbox(&sb.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes every container and sandbox of the pod and their log symlinks. The pod must be
    /// stopped first.
    pub async fn remove_pod(&self, status: &PodRuntimeStatus) -> Result<(), CriError> {
        for c in &status.containers {
            self.remove_container(&c.id).await?;
        }
        for sb in &status.sandboxes {
            match self.runtime.remove_pod_sandbox(&sb.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        if let Err(e) = kubelet_logs::remove_symlinks_for(&self.cfg.container_logs_symlink_dir, id)
        {
            tracing::warn!(
                container_id = id,
                "cannot remove the container log symlink: {e}"
            );
        }
        match self.runtime.remove_container(id).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes dead instances of a live pod beyond the newest dead one per container name, and dead
    /// sandboxes that are not the newest and hold no container (upstream container GC with
    /// MaxPerPodContainer = 1).
    pub async fn gc_pod(&self, status: &PodRuntimeStatus) -> Result<(), CriError> {
        let mut seen_dead = HashSet::new();
        let mut removed = HashSet::new();
        for c in &status.containers {
            if matches!(c.state, ContainerState::Exited | ContainerState::Unknown)
                && !seen_dead.insert(c.name.as_str())
            {
                self.remove_container(&c.id).await?;
                removed.insert(c.id.as_str());
            }
        }
        let newest = status.sandbox().map(|s| s.id.as_str());
        for sb in status
            .sandboxes
            .iter()
            .filter(|s| !s.ready && Some(s.id.as_str()) != newest)
        {
            let in_use = status
                .containers
                .iter()
                .any(|c| !removed.contains(c.id.as_str()) && c.sandbox_id == sb.id);
            if !in_use {
                match self.runtime.remove_pod_sandbox(&sb.id).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
