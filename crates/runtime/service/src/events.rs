//! Container lifecycle events for GetContainerEvents (the kubelet's evented PLEG): a broadcast,
//! so every subscriber sees every event from its subscription on; a subscriber too slow to keep
//! up loses the oldest ones and relists (the PLEG's relist is its safety net).

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
    pub(crate) fn send(&self, event: ContainerEventResponse) {
        tracing::debug!(
            container_id = event.container_id,
            kind = ContainerEventType::try_from(event.container_event_type)
                .map_or("unknown", |k| k.as_str_name()),
            "container event"
        );
        let _ = self.sender.send(event);
    }
}
