//! Dead container garbage collection (upstream kuberuntime_gc.go). Each pod's sync removes the
//! dead instances of its containers beyond --maximum-dead-containers-per-container (one by
//! default, for `kubectl logs --previous`) and its dead sandboxes that nothing needs any more;
//! a node-wide round keeps the node's dead containers at most --maximum-dead-containers. A
//! dead container younger than --minimum-container-ttl-duration is never taken, and its log
//! files go with it.

use crate::events::{EventType, reason};
use crate::labels::{CONTAINER_NAME_LABEL, POD_UID_LABEL};
use crate::manager::RuntimeManager;
use crate::runtime_status::{ContainerState, PodRuntimeStatus};
use kubelet_cri::CriError;
use kubelet_cri::api;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How often the node-wide round runs (upstream's ContainerGCPeriod).
pub const NODE_GC_PERIOD: Duration = Duration::from_secs(60);

/// Runs the node-wide round every [`NODE_GC_PERIOD`], the first at once.
pub async fn run_node_gc(manager: Arc<RuntimeManager>) {
    let mut tick = tokio::time::interval(NODE_GC_PERIOD);
    loop {
        tick.tick().await;
        match manager.gc_node().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed dead containers"),
            // As upstream: every failed round is also a Warning on the node.
            Err(e) => {
                tracing::warn!("dead container garbage collection failed: {e}");
                let message = e.to_string();
                manager.events.node_event(
                    EventType::Warning,
                    reason::CONTAINER_GC_FAILED,
                    &message,
                );
            }
        }
    }
}

/// How many dead containers are kept (upstream's GCPolicy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadContainerPolicy {
    /// A dead container created less than this long ago is kept.
    pub min_age: Duration,
    /// Dead instances kept per container of a pod; negative keeps them all.
    pub max_per_pod_container: i32,
    /// Dead containers kept on the node; negative is no limit.
    pub max_containers: i32,
}

impl Default for DeadContainerPolicy {
    fn default() -> Self {
        Self {
            min_age: Duration::ZERO,
            max_per_pod_container: 1,
            max_containers: -1,
        }
    }
}

/// A dead container that may go: old enough, with its pod and name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Evictable {
    id: String,
    created_at: i64,
}

/// Which of these dead containers go, given per-(pod, container) groups of evictable ones.
fn choose(mut groups: Vec<Vec<Evictable>>, policy: &DeadContainerPolicy) -> Vec<String> {
    for group in &mut groups {
        group.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    }
    let mut removed = Vec::new();
    let keep_each = |groups: &mut Vec<Vec<Evictable>>, keep: usize, removed: &mut Vec<String>| {
        for group in groups.iter_mut() {
            if group.len() > keep {
                removed.extend(group.drain(keep..).map(|c| c.id));
            }
        }
    };
    if let Ok(keep) = usize::try_from(policy.max_per_pod_container) {
        keep_each(&mut groups, keep, &mut removed);
    }
    if let Ok(max) = usize::try_from(policy.max_containers) {
        let total: usize = groups.iter().map(Vec::len).sum();
        if total > max && !groups.is_empty() {
            // As upstream: first an even share per container, at least one each...
            let share = (max / groups.len()).max(1);
            keep_each(&mut groups, share, &mut removed);
            // ...then the oldest anywhere.
            let mut left: Vec<Evictable> = groups.into_iter().flatten().collect();
            if left.len() > max {
                left.sort_by_key(|c| c.created_at);
                let excess = left.len() - max;
                removed.extend(left.into_iter().take(excess).map(|c| c.id));
            }
        }
    }
    removed
}

fn is_dead(state: ContainerState) -> bool {
    matches!(state, ContainerState::Exited | ContainerState::Unknown)
}

impl RuntimeManager {
    fn old_enough(&self, created_at: i64) -> bool {
        let created = self.clock.instant_of(created_at);
        tokio::time::Instant::now().saturating_duration_since(created)
            >= self.cfg.dead_containers.min_age
    }

    /// Removes a dead container and its log files.
    async fn remove_dead_container(&self, id: &str) -> Result<(), CriError> {
        if let Err(e) = kubelet_logs::remove_container_logs(self.runtime.as_ref(), id).await {
            tracing::warn!(container_id = id, "cannot remove the container's logs: {e}");
        }
        self.remove_container(id).await
    }

    /// Removes the pod's dead instances beyond the policy's per-container count, and its dead
    /// sandboxes that are not the newest and hold no container.
    pub async fn gc_pod(&self, status: &PodRuntimeStatus) -> Result<(), CriError> {
        let mut groups: BTreeMap<&str, Vec<Evictable>> = BTreeMap::new();
        for c in &status.containers {
            if is_dead(c.state) && self.old_enough(c.created_at) {
                groups.entry(c.name.as_str()).or_default().push(Evictable {
                    id: c.id.clone(),
                    created_at: c.created_at,
                });
            }
        }
        let per_pod = DeadContainerPolicy {
            max_containers: -1,
            ..self.cfg.dead_containers
        };
        let mut removed = HashSet::new();
        for id in choose(groups.into_values().collect(), &per_pod) {
            self.remove_dead_container(&id).await?;
            removed.insert(id);
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
                .any(|c| !removed.contains(&c.id) && c.sandbox_id == sb.id);
            if !in_use {
                match self.runtime.remove_pod_sandbox(&sb.id).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The node-wide round: every dead container of every pod, held to the policy's node limit
    /// as well as its per-container one. Returns how many went.
    pub async fn gc_node(&self) -> Result<usize, CriError> {
        let containers = self.runtime.list_containers(None).await?;
        let mut groups: BTreeMap<(String, String), Vec<Evictable>> = BTreeMap::new();
        for c in containers {
            let dead = c.state == api::ContainerState::ContainerExited as i32
                || c.state == api::ContainerState::ContainerUnknown as i32;
            let (Some(uid), Some(name)) = (
                c.labels.get(POD_UID_LABEL),
                c.labels.get(CONTAINER_NAME_LABEL),
            ) else {
                continue;
            };
            if dead && self.old_enough(c.created_at) {
                groups
                    .entry((uid.clone(), name.clone()))
                    .or_default()
                    .push(Evictable {
                        id: c.id.clone(),
                        created_at: c.created_at,
                    });
            }
        }
        let doomed = choose(groups.into_values().collect(), &self.cfg.dead_containers);
        for id in &doomed {
            self.remove_dead_container(id).await?;
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(prefix: &str, created: &[i64]) -> Vec<Evictable> {
        created
            .iter()
            .map(|t| Evictable {
                id: format!("{prefix}{t}"),
                created_at: *t,
            })
            .collect()
    }

    fn policy(per_container: i32, total: i32) -> DeadContainerPolicy {
        DeadContainerPolicy {
            min_age: Duration::ZERO,
            max_per_pod_container: per_container,
            max_containers: total,
        }
    }

    #[test]
    fn the_newest_dead_instances_of_each_container_are_kept() {
        let groups = vec![group("a", &[1, 3, 2]), group("b", &[5])];
        assert_eq!(choose(groups.clone(), &policy(1, -1)), ["a2", "a1"]);
        assert_eq!(choose(groups.clone(), &policy(2, -1)), ["a1"]);
        assert!(choose(groups, &policy(-1, -1)).is_empty());
    }

    #[test]
    fn the_node_limit_shares_evenly_then_takes_the_oldest() {
        let groups = vec![
            group("a", &[1, 2, 3, 4]),
            group("b", &[5, 6]),
            group("c", &[7]),
        ];
        // 7 dead, 3 allowed: one each is left (a4, b6, c7).
        assert_eq!(
            choose(groups.clone(), &policy(-1, 3)),
            ["a3", "a2", "a1", "b5"]
        );
        // 2 allowed among 3 containers: one each, then the oldest of those goes.
        assert_eq!(
            choose(groups.clone(), &policy(-1, 2)),
            ["a3", "a2", "a1", "b5", "a4"]
        );
        // Zero keeps nothing.
        assert_eq!(choose(groups, &policy(1, 0)).len(), 7);
    }
}
