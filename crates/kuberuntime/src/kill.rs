//! Stopping and removing a pod's containers and sandboxes (upstream KillPod and killContainer).

use crate::events::{EventType, reason};
use crate::hooks::FAILED_PRE_STOP_HOOK;
use crate::manager::RuntimeManager;
use crate::runtime_status::{ContainerStatus, PodRuntimeStatus};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kubelet_cri::CriError;
use std::time::Duration;
use tokio::time::Instant;

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

    /// Stops one container: its preStop hook first, inside the grace period, then the runtime
    /// stop with what is left of it (upstream killContainer).
    pub(crate) async fn kill_container(
        &self,
        pod: Option<&Pod>,
        c: &ContainerStatus,
        pod_ip: Option<&str>,
        grace: Duration,
        message: &str,
    ) -> Result<(), CriError> {
        if let Some(p) = pod {
            self.events
                .event(p, EventType::Normal, reason::KILLING, message);
        }
        let spec_hook = pod.and_then(|p| {
            let spec = p.spec.as_ref()?;
            let all = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten());
            all.filter(|s| s.name == c.name)
                .find_map(|s| s.lifecycle.as_ref()?.pre_stop.clone())
        });
        let mut grace = grace;
        if let (Some(p), Some(hook)) = (pod, spec_hook.or_else(|| c.info.pre_stop_handler.clone()))
        {
            let started = Instant::now();
            match tokio::time::timeout(grace, self.hooks.run(p, &c.name, &c.id, pod_ip, &hook))
                .await
            {
                Ok(Ok(())) => {}
                // As upstream, the event carries the handler's own message.
                Ok(Err(msg)) => {
                    self.events
                        .event(p, EventType::Warning, FAILED_PRE_STOP_HOOK, &msg);
                }
                Err(_) => {
                    tracing::warn!(container = %c.name, "preStop hook did not complete within the grace period {grace:?}")
                }
            }
            grace = grace.saturating_sub(started.elapsed());
        }
        self.stop_container(&c.id, &c.name, grace.max(MIN_GRACE_PERIOD))
            .await
    }

    /// Stops every running container of the pod, then its ready sandboxes. App containers stop in
    /// parallel; sidecars (restartable init containers) after them, one by one in reverse order.
    pub async fn kill_pod_containers(
        &self,
        pod: Option<&Pod>,
        status: &PodRuntimeStatus,
        grace_override: Option<Duration>,
    ) -> Result<(), CriError> {
        let deadline = Instant::now();
        let pod_ip = status
            .sandbox()
            .and_then(|s| s.ips.first())
            .map(String::as_str);
        let grace_of = |c: &ContainerStatus| match pod {
            Some(_) => self.grace_period(pod, grace_override),
            // Without the spec (an orphan), the grace period comes from the container's annotation.
            None => grace_override
                .or(c
                    .info
                    .termination_grace_period
                    .map(|s| Duration::from_secs(s.max(0) as u64)))
                .unwrap_or(DEFAULT_GRACE_PERIOD)
                .max(MIN_GRACE_PERIOD),
        };
        let sidecars: Vec<&str> = pod
            .and_then(|p| p.spec.as_ref()?.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .map(|c| c.name.as_str())
            .collect();
        let (side, main): (Vec<_>, Vec<_>) = status
            .running_containers()
            .partition(|c| sidecars.contains(&c.name.as_str()));
        let stops = main.iter().map(|c| async move {
            let message = format!("Stopping container {}", c.name);
            self.kill_container(pod, c, pod_ip, grace_of(c), &message)
                .await
        });
        for r in join_all(stops).await {
            r?;
        }
        for name in sidecars.iter().rev() {
            for c in side.iter().filter(|c| c.name == *name) {
                // Sidecars share what is left of the pod's grace period.
                let left = grace_of(c).saturating_sub(deadline.elapsed());
                self.kill_container(
                    pod,
                    c,
                    pod_ip,
                    left,
                    &format!("Stopping container {}", c.name),
                )
                .await?;
            }
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

    pub(crate) async fn remove_container(&self, id: &str) -> Result<(), CriError> {
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
}
