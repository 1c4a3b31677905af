//! Removing whatever bench pods of this node a runtime still holds: before the first session
//! (after an interrupted run) and after each one (a kubelet that left something behind).

use crate::error::{BenchError, Result};
use crate::pods::bench_pod_name;
use kubelet_cri::RuntimeService;
use kubelet_cri::remote::RemoteRuntime;
use tracing::warn;

/// Stops and removes every sandbox of a bench pod of `node`, then any such container left.
/// Returns how many objects it removed.
pub async fn purge(cri: &RemoteRuntime, node: &str) -> Result<usize> {
    let mut removed = 0;
    let sandboxes = cri
        .list_pod_sandbox(None)
        .await
        .map_err(BenchError::cri("ListPodSandbox"))?;
    for sandbox in sandboxes {
        let Some(pod) = bench_pod_name(&sandbox.labels, node) else {
            continue;
        };
        warn!(pod, sandbox = %sandbox.id, "removing a leftover sandbox");
        cri.stop_pod_sandbox(&sandbox.id)
            .await
            .map_err(BenchError::cri("StopPodSandbox"))?;
        cri.remove_pod_sandbox(&sandbox.id)
            .await
            .map_err(BenchError::cri("RemovePodSandbox"))?;
        removed += 1;
    }
    let containers = cri
        .list_containers(None)
        .await
        .map_err(BenchError::cri("ListContainers"))?;
    for container in containers {
        let Some(pod) = bench_pod_name(&container.labels, node) else {
            continue;
        };
        warn!(pod, container = %container.id, "removing a leftover container");
        cri.remove_container(&container.id)
            .await
            .map_err(BenchError::cri("RemoveContainer"))?;
        removed += 1;
    }
    Ok(removed)
}
