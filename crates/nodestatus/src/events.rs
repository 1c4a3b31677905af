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

/// The event reasons for the condition transitions from `old` to `new`. As upstream, a
/// pressure condition seen for the first time counts as a transition; Ready only counts once
/// it had a status to move from.
pub fn status_events(old: Option<&NodeStatus>, new: &NodeStatus) -> Vec<&'static str> {
    let status_of = |status: Option<&NodeStatus>, kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == kind))
            .map(|c| c.status.clone())
    };
    let mut events = Vec::new();
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
            events.push(reason);
        }
    }
    events
}

/// Posts a Normal event about the Node, in the default namespace, as the kubelet's recorder
/// does for a cluster-scoped object. Events are best effort: a failure is logged, not returned.
pub async fn record_node_event(
    client: &kube::Client,
    node_name: &str,
    reason: &str,
    message: &str,
) {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = node_event(node_name, reason, message, Timestamp::now());
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        tracing::warn!(node = %node_name, %reason, error = %e, "cannot record the node event");
    }
}

/// Records "Starting kubelet.", which the kubelet posts once on start.
pub async fn record_starting_event(client: &kube::Client, node_name: &str) {
    record_node_event(client, node_name, "Starting", "Starting kubelet.").await;
}

pub(crate) async fn record_status_events(client: &kube::Client, node_name: &str, reasons: &[&str]) {
    for reason in reasons {
        let message = format!("Node {node_name} status is now: {reason}");
        record_node_event(client, node_name, reason, &message).await;
    }
}

fn node_event(node_name: &str, reason: &str, message: &str, now: Timestamp) -> Event {
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
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some("Normal".to_string()),
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
    use k8s_openapi::api::core::v1::NodeCondition;

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
            status_events(None, &new),
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
        assert_eq!(
            status_events(Some(&old), &new),
            ["NodeHasDiskPressure", "NodeReady"]
        );
        assert!(status_events(Some(&new), &new).is_empty());
        let not_ready = status(&[("DiskPressure", "True"), ("Ready", "False")]);
        assert_eq!(status_events(Some(&new), &not_ready), ["NodeNotReady"]);
    }

    #[test]
    fn the_event_names_the_node() {
        let event = node_event(
            "node-a",
            "Starting",
            "Starting kubelet.",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(event.metadata.name.as_deref(), Some("node-a.0"));
        assert_eq!(event.involved_object.uid.as_deref(), Some("node-a"));
        assert_eq!(
            event.source.and_then(|s| s.component).as_deref(),
            Some("kubelet")
        );
    }
}
