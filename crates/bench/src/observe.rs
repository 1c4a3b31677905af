//! What the runtime holds, as the bench sees it through CRI: every figure is taken here, never
//! from what a kubelet claims. Polling is the only way on containerd 1.6 (no CRI events), so
//! figures have a resolution of [`POLL`].

use crate::error::{BenchError, Result};
use crate::pods::{BenchPod, CONTAINERS_PER_POD, bench_pod_name};
use kubelet_cri::RuntimeService;
use kubelet_cri::api::{ContainerFilter, ContainerState, ContainerStateValue};
use kubelet_cri::remote::RemoteRuntime;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How often the runtime is asked. Short enough for sub-second figures, long enough that the
/// bench's own listing stays a small load on the runtime (the same for every subject).
pub const POLL: Duration = Duration::from_millis(20);

/// Called on every poll: fails when the subject died (a kubelet that exited will never finish).
pub type Liveness<'a> = &'a (dyn Fn() -> Result<()> + Sync);

/// The bench's pods in the runtime at one instant.
#[derive(Debug, Default)]
struct Snapshot {
    /// Running container ids, by pod full name.
    running: HashMap<String, Vec<String>>,
    /// Pods that have a sandbox or a container in any state.
    present: HashSet<String>,
}

/// Watches the bench pods of one node.
#[derive(Clone)]
pub struct Observer {
    cri: RemoteRuntime,
    node: String,
    timeout: Duration,
}

impl Observer {
    pub fn new(cri: RemoteRuntime, node: &str, timeout: Duration) -> Self {
        Observer {
            cri,
            node: node.to_string(),
            timeout,
        }
    }

    async fn running(&self) -> Result<HashMap<String, Vec<String>>> {
        let filter = ContainerFilter {
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        };
        let containers = self
            .cri
            .list_containers(Some(filter))
            .await
            .map_err(BenchError::cri("ListContainers"))?;
        let mut running: HashMap<String, Vec<String>> = HashMap::new();
        for c in containers {
            if let Some(pod) = bench_pod_name(&c.labels, &self.node) {
                running.entry(pod.to_string()).or_default().push(c.id);
            }
        }
        Ok(running)
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        let running = self.running().await?;
        let sandboxes = self
            .cri
            .list_pod_sandbox(None)
            .await
            .map_err(BenchError::cri("ListPodSandbox"))?;
        let containers = self
            .cri
            .list_containers(None)
            .await
            .map_err(BenchError::cri("ListContainers"))?;
        let present = sandboxes
            .iter()
            .map(|s| &s.labels)
            .chain(containers.iter().map(|c| &c.labels))
            .filter_map(|labels| bench_pod_name(labels, &self.node))
            .map(str::to_string)
            .collect();
        Ok(Snapshot { running, present })
    }

    fn timeout(&self, what: impl Into<String>) -> BenchError {
        BenchError::Timeout {
            what: what.into(),
            after: self.timeout,
        }
    }

    /// The instant each of `pods` was first seen with all its containers running.
    pub async fn wait_running(
        &self,
        pods: &[BenchPod],
        alive: Liveness<'_>,
    ) -> Result<HashMap<String, Instant>> {
        let deadline = Instant::now() + self.timeout;
        let mut seen = HashMap::new();
        loop {
            let running = self.running().await?;
            let now = Instant::now();
            for pod in pods {
                let ready = running
                    .get(&pod.full_name)
                    .is_some_and(|ids| ids.len() >= CONTAINERS_PER_POD);
                if ready {
                    seen.entry(pod.full_name.clone()).or_insert(now);
                }
            }
            if seen.len() == pods.len() {
                return Ok(seen);
            }
            alive()?;
            if now > deadline {
                return Err(self.timeout(format!(
                    "{} of {} pods to run",
                    pods.len() - seen.len(),
                    pods.len()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The instant the runtime holds exactly `pods`, all running, and nothing of any other
    /// bench pod of this node (no sandbox or container in any state).
    pub async fn wait_exactly(&self, pods: &[BenchPod], alive: Liveness<'_>) -> Result<Instant> {
        let deadline = Instant::now() + self.timeout;
        let wanted: HashSet<&str> = pods.iter().map(|p| p.full_name.as_str()).collect();
        loop {
            let snapshot = self.snapshot().await?;
            let now = Instant::now();
            let all_running = wanted.iter().all(|pod| {
                snapshot
                    .running
                    .get(*pod)
                    .is_some_and(|ids| ids.len() >= CONTAINERS_PER_POD)
            });
            let no_others = snapshot
                .present
                .iter()
                .all(|pod| wanted.contains(pod.as_str()));
            if all_running && no_others {
                return Ok(now);
            }
            alive()?;
            if now > deadline {
                let others = snapshot
                    .present
                    .iter()
                    .filter(|pod| !wanted.contains(pod.as_str()))
                    .count();
                return Err(self.timeout(format!(
                    "the runtime to hold exactly {} running pods ({others} others remain)",
                    wanted.len()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The instant no bench pod of this node is left in the runtime.
    pub async fn wait_gone(&self, alive: Liveness<'_>) -> Result<Instant> {
        self.wait_exactly(&[], alive).await
    }

    /// The running container ids of `pod` now.
    pub async fn running_containers(&self, pod: &BenchPod) -> Result<Vec<String>> {
        Ok(self
            .running()
            .await?
            .remove(&pod.full_name)
            .unwrap_or_default())
    }

    /// The instant `pod` runs a container other than `old`.
    pub async fn wait_replaced(
        &self,
        pod: &BenchPod,
        old: &str,
        alive: Liveness<'_>,
    ) -> Result<Instant> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let ids = self.running_containers(pod).await?;
            let now = Instant::now();
            if ids.iter().any(|id| id != old) {
                return Ok(now);
            }
            alive()?;
            if now > deadline {
                return Err(self.timeout(format!("a new container of {}", pod.full_name)));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
