//! Container lifecycle events for GetContainerEvents (the kubelet's evented PLEG): a broadcast,
//! so every subscriber sees every event from its subscription on; a subscriber too slow to keep
//! up loses its stream and relists (the PLEG's relist is its safety net).
//!
//! As containerd does, every event carries the pod's sandbox status and the statuses of all its
//! containers, and the sandbox itself has events too (container id = sandbox id), so a PLEG
//! following the stream never needs to list to learn a pod's state.

use crate::records::{ContainerRecord, SandboxRecord};
use crate::{Inner, container, now_ns, sandbox};
use k8s_cri::v1::{ContainerEventResponse, ContainerEventType};
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it misses some.
const BACKLOG: usize = 1024;

pub(crate) struct Events {
    sender: broadcast::Sender<ContainerEventResponse>,
}

impl Events {
    pub(crate) fn new() -> Events {
        Events {
            sender: broadcast::channel(BACKLOG).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ContainerEventResponse> {
        self.sender.subscribe()
    }

    /// Sends to the current subscribers; none is fine.
    fn send(&self, event: ContainerEventResponse) {
        tracing::debug!(
            container_id = event.container_id,
            kind = ContainerEventType::try_from(event.container_event_type)
                .map_or("unknown", |k| k.as_str_name()),
            "container event"
        );
        let _ = self.sender.send(event);
    }
}

/// An event about one of the pod's containers, with the pod's state as it is now.
pub(crate) fn container_event(inner: &Inner, record: &ContainerRecord, kind: ContainerEventType) {
    let pod_sandbox_status = inner
        .sandboxes
        .find(&record.sandbox_id)
        .ok()
        .map(|s| sandbox::to_cri_status(&s.get()));
    inner.events.send(ContainerEventResponse {
        container_id: record.id.clone(),
        container_event_type: kind as i32,
        created_at: now_ns(),
        pod_sandbox_status,
        containers_statuses: statuses(inner, &record.sandbox_id),
    });
}

/// An event about the sandbox itself. `record` is its state to report: for DELETED, the last one
/// before its removal, so the subscriber still learns which pod it was.
pub(crate) fn sandbox_event(inner: &Inner, record: &SandboxRecord, kind: ContainerEventType) {
    inner.events.send(ContainerEventResponse {
        container_id: record.id.clone(),
        container_event_type: kind as i32,
        created_at: now_ns(),
        pod_sandbox_status: Some(sandbox::to_cri_status(record)),
        containers_statuses: statuses(inner, &record.id),
    });
}

fn statuses(inner: &Inner, sandbox_id: &str) -> Vec<k8s_cri::v1::ContainerStatus> {
    container::of_sandbox(inner, sandbox_id)
        .iter()
        .map(|c| container::to_cri_status(&c.get()))
        .collect()
}
