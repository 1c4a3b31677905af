//! Node events as the kubelet records them: "Starting kubelet." and the condition
//! transitions ("Node NAME status is now: NodeHasSufficientMemory", NodeReady, ...).

use k8s_openapi::api::core::v1::{Event, EventSource, NodeStatus, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{Timestamp, Unit};
use kube::api::{Api, PostParams};

/// The event reason of each condition entering a status, as upstream's setters record them.
const TRANSITIONS: [(&str, &str, &str); 7] = [
    ("MemoryPressure", "True", "NodeHasInsufficientMemory"),
    ("MemoryPressure", "False", "NodeHasSufficientMemory"),
    ("DiskPressure", "True", "NodeHasDiskPressure"),
    ("DiskPressure", "False", "NodeHasNoDiskPressure"),
    ("PIDPressure", "True", "NodeHasInsufficientPID"),
    ("PIDPressure", "False", "NodeHasSufficientPID"),
    ("Ready", "True", "NodeReady"),
];

/// An event about the Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// "Normal" or "Warning".
    pub event_type: &'static str,
    pub reason: String,
    pub message: String,
}

impl NodeEvent {
    fn normal(reason: &str, message: String) -> Self {
        NodeEvent {
            event_type: "Normal",
            reason: reason.to_string(),
            message,
        }
    }
}

/// The events the move from `old` to `new` calls for, as upstream's setters record them:
/// condition transitions ("Node NAME status is now: REASON"; a pressure condition seen for
/// the first time counts, Ready only once it had a status to move from) and a Warning
/// "Rebooted" when the boot ID changed.
pub fn status_events(
    node_name: &str,
    old: Option<&NodeStatus>,
    new: &NodeStatus,
) -> Vec<NodeEvent> {
    let status_of = |status: Option<&NodeStatus>, kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == kind))
            .map(|c| c.status.clone())
    };
    let mut events = Vec::new();
    let boot_id = |status: Option<&NodeStatus>| {
        status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.boot_id.clone())
            .unwrap_or_default()
    };
    let (old_boot, new_boot) = (boot_id(old), boot_id(Some(new)));
    if !old_boot.is_empty() && old_boot != new_boot {
        events.push(NodeEvent {
            event_type: "Warning",
            reason: "Rebooted".to_string(),
            message: format!("Node {node_name} has been rebooted, boot id: {new_boot}"),
        });
    }
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"] {
        let before = status_of(old, kind);
        let Some(after) = status_of(Some(new), kind) else {
            continue;
        };
        if before.as_deref() == Some(after.as_str()) || (kind == "Ready" && before.is_none()) {
            continue;
        }
        let reason = TRANSITIONS
            .iter()
            .find(|(k, s, _)| *k == kind && *s == after)
            .map(|(_, _, reason)| *reason)
            .unwrap_or(if kind == "Ready" { "NodeNotReady" } else { "" });
        if !reason.is_empty() {
            let message = format!("Node {node_name} status is now: {reason}");
            events.push(NodeEvent::normal(reason, message));
        }
    }
    events
}

/// Posts an event about the Node, in the default namespace, as the kubelet's recorder does
/// for a cluster-scoped object. Events are best effort: a failure is logged, not returned.
pub async fn record_node_event(client: &kube::Client, node_name: &str, event: &NodeEvent) {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let body = node_event(node_name, event, Timestamp::now());
    if let Err(e) = events.create(&PostParams::default(), &body).await {
        tracing::warn!(node = %node_name, reason = %event.reason, error = %e, "cannot record the node event");
    }
}

/// Records "Starting kubelet.", which the kubelet posts once on start.
pub async fn record_starting_event(client: &kube::Client, node_name: &str) {
    let event = NodeEvent::normal("Starting", "Starting kubelet.".to_string());
    record_node_event(client, node_name, &event).await;
}

pub(crate) async fn record_node_events(
    client: &kube::Client,
    node_name: &str,
    events: &[NodeEvent],
) {
    for event in events {
        record_node_event(client, node_name, event).await;
    }
}

fn node_event(node_name: &str, event: &NodeEvent, now: Timestamp) -> Event {
    let time = Time(now.round(Unit::Second).unwrap_or(now));
    Event {
        metadata: ObjectMeta {
            // The recorder's naming: the object's name and the time in hex nanoseconds.
            name: Some(format!("{node_name}.{:x}", now.as_nanosecond())),
            namespace: Some("default".to_string()),
            ..ObjectMeta::default()
        },
        // The kubelet's node reference uses the node name as its UID.
        involved_object: ObjectReference {
            kind: Some("Node".to_string()),
            name: Some(node_name.to_string()),
            uid: Some(node_name.to_string()),
            ..ObjectReference::default()
        },
        reason: Some(event.reason.clone()),
        message: Some(event.message.clone()),
        type_: Some(event.event_type.to_string()),
        source: Some(EventSource {
            component: Some("kubelet".to_string()),
            host: Some(node_name.to_string()),
        }),
        first_timestamp: Some(time.clone()),
        last_timestamp: Some(time),
        count: Some(1),
        reporting_component: Some("kubelet".to_string()),
        reporting_instance: Some(node_name.to_string()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSystemInfo};

    fn reasons(events: &[NodeEvent]) -> Vec<&str> {
        events.iter().map(|e| e.reason.as_str()).collect()
    }

    fn status(conditions: &[(&str, &str)]) -> NodeStatus {
        NodeStatus {
            conditions: Some(
                conditions
                    .iter()
                    .map(|(kind, status)| NodeCondition {
                        type_: kind.to_string(),
                        status: status.to_string(),
                        ..NodeCondition::default()
                    })
                    .collect(),
            ),
            ..NodeStatus::default()
        }
    }

    #[test]
    fn a_fresh_node_reports_its_pressure_conditions_but_not_ready() {
        let new = status(&[
            ("MemoryPressure", "False"),
            ("DiskPressure", "False"),
            ("PIDPressure", "False"),
            ("Ready", "True"),
        ]);
        assert_eq!(
            reasons(&status_events("node-a", None, &new)),
            [
                "NodeHasSufficientMemory",
                "NodeHasNoDiskPressure",
                "NodeHasSufficientPID"
            ]
        );
    }

    #[test]
    fn transitions_are_reported_once() {
        let old = status(&[("DiskPressure", "False"), ("Ready", "False")]);
        let new = status(&[("DiskPressure", "True"), ("Ready", "True")]);
        let events = status_events("node-a", Some(&old), &new);
        assert_eq!(reasons(&events), ["NodeHasDiskPressure", "NodeReady"]);
        assert_eq!(events[1].message, "Node node-a status is now: NodeReady");
        assert!(status_events("node-a", Some(&new), &new).is_empty());
        let not_ready = status(&[("DiskPressure", "True"), ("Ready", "False")]);
        let events = status_events("node-a", Some(&new), &not_ready);
        assert_eq!(reasons(&events), ["NodeNotReady"]);
    }

    #[test]
    fn a_new_boot_id_is_a_reboot() {
        let booted = |id: &str| NodeStatus {
            node_info: Some(NodeSystemInfo {
                boot_id: id.to_string(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        };
        let events = status_events("node-a", Some(&booted("one")), &booted("two"));
        assert_eq!(
            events,
            [NodeEvent {
                event_type: "Warning",
                reason: "Rebooted".to_string(),
                message: "Node node-a has been rebooted, boot id: two".to_string(),
            }]
        );
        assert!(status_events("node-a", Some(&booted("")), &booted("two")).is_empty());
    }

    #[test]
    fn the_event_names_the_node() {
        let starting = NodeEvent::normal("Starting", "Starting kubelet.".to_string());
        let event = node_event("node-a", &starting, Timestamp::UNIX_EPOCH);
        assert_eq!(event.metadata.name.as_deref(), Some("node-a.0"));
        assert_eq!(event.involved_object.uid.as_deref(), Some("node-a"));
        assert_eq!(event.type_.as_deref(), Some("Normal"));
        assert_eq!(
            event.source.and_then(|s| s.component).as_deref(),
            Some("kubelet")
        );
    }
}
