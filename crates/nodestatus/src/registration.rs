//! Registering the Node (upstream registerWithAPIServer / tryRegisterWithAPIServer).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use crate::NodeStatusError;
use crate::backoff::Backoff;
use crate::events::{record_node_events, status_events};
use crate::info::{NodeInfoSource, PressureInputs};
use crate::machine::MachineFacts;
use crate::status::{go_arch, node_status};

pub(crate) const CONTROLLER_MANAGED_ATTACH_DETACH: &str =
    "volumes.kubernetes.io/controller-managed-attach-detach";

const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
const LABEL_OS: &str = "kubernetes.io/os";
const LABEL_ARCH: &str = "kubernetes.io/arch";
const LABEL_OS_BETA: &str = "beta.kubernetes.io/os";
const LABEL_ARCH_BETA: &str = "beta.kubernetes.io/arch";

/// The labels the kubelet keeps in line on a Node it adopts (upstream updateDefaultLabels;
/// the cloud ones, zone, region and instance type, are never set without a cloud provider, so
/// an adopted Node loses them as upstream's would).
const DEFAULT_LABELS: [&str; 12] = [
    LABEL_HOSTNAME,
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    LABEL_OS,
    LABEL_ARCH,
    "node.kubernetes.io/windows-build",
    LABEL_OS_BETA,
    LABEL_ARCH_BETA,
];

/// The Node the kubelet would create: default labels, --node-labels, the attach/detach
/// annotation, --register-with-taints and a first status.
pub fn initial_node(
    info: &NodeInfoSource,
    machine: &MachineFacts,
    inputs: &PressureInputs,
    now: Timestamp,
) -> Node {
    let os = std::env::consts::OS.to_string();
    let arch = go_arch().to_string();
    let mut labels = BTreeMap::from([
        (LABEL_HOSTNAME.to_string(), info.hostname.clone()),
        (LABEL_OS.to_string(), os.clone()),
        (LABEL_ARCH.to_string(), arch.clone()),
        (LABEL_OS_BETA.to_string(), os),
        (LABEL_ARCH_BETA.to_string(), arch),
    ]);
    labels.extend(info.labels.clone());
    let annotations = info.controller_attach_detach.then(|| {
        BTreeMap::from([(
            CONTROLLER_MANAGED_ATTACH_DETACH.to_string(),
            "true".to_string(),
        )])
    });
    Node {
        metadata: ObjectMeta {
            name: Some(info.node_name.clone()),
            labels: Some(labels),
            annotations,
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!info.taints.is_empty()).then(|| info.taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(node_status(info, machine, inputs, None, now)),
    }
}

/// Creates the Node, or adopts the one that exists: its default labels and the attach/detach
/// annotation are reconciled with what this kubelet would register; --node-labels and taints
/// of an existing Node are left alone, as upstream.
pub async fn register_node(
    client: &kube::Client,
    info: &NodeInfoSource,
    machine: &MachineFacts,
    inputs: &PressureInputs,
) -> Result<Node, NodeStatusError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node_error = |action, source| NodeStatusError::Node {
        action,
        node: info.node_name.clone(),
        source: Box::new(source),
    };
    let node = initial_node(info, machine, inputs, Timestamp::now());
    match nodes.create(&PostParams::default(), &node).await {
        Ok(created) => {
            tracing::info!(node = %info.node_name, "registered the node");
            if let Some(status) = &node.status {
                let events = status_events(&info.node_name, None, status);
                record_node_events(client, &info.node_name, &events).await;
            }
            return Ok(created);
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(e) => return Err(node_error("create", e)),
    }
    let existing = nodes
        .get(&info.node_name)
        .await
        .map_err(|e| node_error("get", e))?;
    let Some(patch) = reconcile_patch(&node, &existing) else {
        tracing::info!(node = %info.node_name, "adopted the existing node");
        return Ok(existing);
    };
    let adopted = nodes
        .patch(
            &info.node_name,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .map_err(|e| node_error("reconcile", e))?;
    tracing::info!(node = %info.node_name, "adopted the existing node and reconciled its labels");
    Ok(adopted)
}

/// Registers until it succeeds, backing off from 100 ms to 7 s as upstream.
pub async fn register_node_until_success(
    client: &kube::Client,
    info: &NodeInfoSource,
    machine: &MachineFacts,
    inputs: &PressureInputs,
) -> Node {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(7));
    loop {
        match register_node(client, info, machine, inputs).await {
            Ok(node) => return node,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, ?delay, "unable to register the node with the API server");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The metadata patch that brings `existing` in line with `wanted`, or None when it already is.
fn reconcile_patch(wanted: &Node, existing: &Node) -> Option<Value> {
    let empty = BTreeMap::new();
    let wanted_labels = wanted.metadata.labels.as_ref().unwrap_or(&empty);
    let existing_labels = existing.metadata.labels.as_ref().unwrap_or(&empty);
    let mut labels = Map::new();
    for key in DEFAULT_LABELS {
        let want = wanted_labels.get(key);
        if want != existing_labels.get(key) {
            labels.insert(key.to_string(), want.map_or(Value::Null, |v| json!(v)));
        }
    }
    let mut annotations = Map::new();
    let want_cmad = wanted
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONTROLLER_MANAGED_ATTACH_DETACH));
    let has_cmad = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONTROLLER_MANAGED_ATTACH_DETACH));
    if want_cmad != has_cmad {
        annotations.insert(
            CONTROLLER_MANAGED_ATTACH_DETACH.to_string(),
            want_cmad.map_or(Value::Null, |v| json!(v)),
        );
    }
    if labels.is_empty() && annotations.is_empty() {
        return None;
    }
    let mut metadata = Map::new();
    if !labels.is_empty() {
        metadata.insert("labels".to_string(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".to_string(), Value::Object(annotations));
    }
    Some(json!({ "metadata": metadata }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> NodeInfoSource {
        NodeInfoSource {
            node_name: "node-a".to_string(),
            hostname: "node-a".to_string(),
            labels: BTreeMap::from([("role".to_string(), "edge".to_string())]),
            controller_attach_detach: true,
            max_pods: 110,
            ..NodeInfoSource::default()
        }
    }

    fn wanted() -> Node {
        initial_node(
            &info(),
            &MachineFacts::default(),
            &PressureInputs::default(),
            Timestamp::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_node_in_line_needs_no_patch() {
        assert_eq!(reconcile_patch(&wanted(), &wanted()), None);
    }

    #[test]
    fn stale_default_labels_and_annotation_are_patched() {
        let mut existing = wanted();
        let labels = existing.metadata.labels.as_mut().expect("labels");
        labels.insert(LABEL_HOSTNAME.to_string(), "old-name".to_string());
        labels.insert("topology.kubernetes.io/zone".to_string(), "z1".to_string());
        labels.insert("role".to_string(), "other".to_string());
        existing.metadata.annotations = None;
        let patch = reconcile_patch(&wanted(), &existing).expect("a patch");
        assert_eq!(
            patch,
            json!({"metadata": {
                "labels": {"kubernetes.io/hostname": "node-a", "topology.kubernetes.io/zone": null},
                "annotations": {CONTROLLER_MANAGED_ATTACH_DETACH: "true"},
            }})
        );
    }
}
