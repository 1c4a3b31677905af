//! Finding and removing test pods through CRI, by the pod UID label the kubelet puts on every
//! sandbox and container.

use kubelet_cri::api::{Container, ContainerFilter, PodSandbox, PodSandboxFilter};
use kubelet_cri::{CriError, RuntimeService};
use std::collections::HashMap;

/// The CRI label that carries a pod's UID, as upstream's kubelet sets it.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

fn uid_selector(pod_uid: &str) -> HashMap<String, String> {
    HashMap::from([(POD_UID_LABEL.to_string(), pod_uid.to_string())])
}

pub(crate) async fn sandboxes_of(
    runtime: &impl RuntimeService,
    pod_uid: &str,
) -> Result<Vec<PodSandbox>, CriError> {
    runtime
        .list_pod_sandbox(Some(PodSandboxFilter {
            label_selector: uid_selector(pod_uid),
            ..Default::default()
        }))
        .await
}

pub(crate) async fn containers_of(
    runtime: &impl RuntimeService,
    pod_uid: &str,
) -> Result<Vec<Container>, CriError> {
    runtime
        .list_containers(Some(ContainerFilter {
            label_selector: uid_selector(pod_uid),
            ..Default::default()
        }))
        .await
}

pub(crate) async fn remove_pod(
    runtime: &impl RuntimeService,
    pod_uid: &str,
) -> Result<(), CriError> {
    let sandboxes = PodSandboxFilter {
        label_selector: uid_selector(pod_uid),
        ..Default::default()
    };
    remove_sandboxes(runtime, Some(sandboxes)).await?;
    // Containers whose sandbox is already gone are not removed with it.
    for container in containers_of(runtime, pod_uid).await? {
        ignore_not_found(runtime.remove_container(&container.id).await)?;
    }
    Ok(())
}

/// Stops and removes every sandbox that `filter` selects (all of them for `None`), with their
/// containers. Returns the ids it removed. Sandboxes that vanish meanwhile are fine.
pub async fn remove_sandboxes(
    runtime: &impl RuntimeService,
    filter: Option<PodSandboxFilter>,
) -> Result<Vec<String>, CriError> {
    let mut removed = Vec::new();
    for sandbox in runtime.list_pod_sandbox(filter).await? {
        ignore_not_found(runtime.stop_pod_sandbox(&sandbox.id).await)?;
        ignore_not_found(runtime.remove_pod_sandbox(&sandbox.id).await)?;
        removed.push(sandbox.id);
    }
    Ok(removed)
}

fn ignore_not_found(outcome: Result<(), CriError>) -> Result<(), CriError> {
    match outcome {
        Err(err) if err.is_not_found() => Ok(()),
        other => other,
    }
}
