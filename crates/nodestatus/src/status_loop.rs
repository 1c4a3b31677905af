//! Posting the node status (upstream syncNodeStatus / tryUpdateNodeStatus).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::NodeStatusError;
use crate::backoff::Backoff;
use crate::events::{record_node_events, status_events};
use crate::info::{NodeInfoSource, PressureInputs};
use crate::machine::MachineFacts;
use crate::status::{node_status, status_changed};

/// The condition types this loop writes; others' conditions are never sent.
const OWN_CONDITIONS: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

#[derive(Debug, Clone)]
pub struct NodeStatusConfig {
    /// nodeStatusUpdateFrequency: how often the status is computed.
    pub update_frequency: Duration,
    /// nodeStatusReportFrequency: how often it is posted even when nothing changed.
    pub report_frequency: Duration,
    /// The first delay before a retry when the API server does not answer; it doubles up to
    /// `update_frequency`.
    pub retry_initial: Duration,
}

impl Default for NodeStatusConfig {
    fn default() -> Self {
        NodeStatusConfig {
            update_frequency: Duration::from_secs(10),
            report_frequency: Duration::from_secs(5 * 60),
            retry_initial: Duration::from_millis(200),
        }
    }
}

/// Computes the node status every `update_frequency` and patches the Node's status
/// subresource when it changed or when `report_frequency` has passed since the last post.
pub struct NodeStatusLoop {
    client: kube::Client,
    nodes: Api<Node>,
    info: NodeInfoSource,
    machine: MachineFacts,
    inputs: watch::Receiver<PressureInputs>,
    config: NodeStatusConfig,
    last_report: Option<Instant>,
    /// Where the Node as last read or written goes (admission and mirror pods read it).
    published: Option<watch::Sender<Option<Node>>>,
    extended: Option<ExtendedResources>,
    volumes_in_use: Option<VolumesInUse>,
}

/// The device plugins' resources: name -> (capacity, allocatable), read each round.
pub type ExtendedResources =
    std::sync::Arc<dyn Fn() -> BTreeMap<String, (Quantity, Quantity)> + Send + Sync>;

/// The unique names of the attachable volumes mounted or to be mounted here, sorted (upstream's
/// volume manager GetVolumesInUse), read each round.
pub type VolumesInUse = std::sync::Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Adds the extended resources to the status (upstream's device plugin resources setter).
fn add_extended(status: &mut NodeStatus, extended: BTreeMap<String, (Quantity, Quantity)>) {
    for (name, (capacity, allocatable)) in extended {
        status
            .capacity
            .get_or_insert_with(BTreeMap::new)
            .insert(name.clone(), capacity);
        status
            .allocatable
            .get_or_insert_with(BTreeMap::new)
            .insert(name, allocatable);
    }
}

impl NodeStatusLoop {
    /// `inputs` carries the latest pressure and readiness, published by the eviction manager
    /// and the runtime health checks.
    pub fn new(
        client: kube::Client,
        info: NodeInfoSource,
        machine: MachineFacts,
        inputs: watch::Receiver<PressureInputs>,
        config: NodeStatusConfig,
    ) -> Self {
        NodeStatusLoop {
            nodes: Api::all(client.clone()),
            client,
            info,
            machine,
            inputs,
            config,
            last_report: None,
            published: None,
            extended: None,
            volumes_in_use: None,
        }
    }

    /// Reports the resources `extended` answers in capacity and allocatable each round.
    pub fn with_extended_resources(mut self, extended: ExtendedResources) -> Self {
        self.extended = Some(extended);
        self
    }

    /// Reports what `volumes` answers as volumesInUse each round (upstream's VolumesInUse
    /// setter); without it the Node's value is left alone.
    pub fn with_volumes_in_use(mut self, volumes: VolumesInUse) -> Self {
        self.volumes_in_use = Some(volumes);
        self
    }

    /// Publishes the Node on `sender` each round, as read from or written to the API server.
    pub fn publish_to(mut self, sender: watch::Sender<Option<Node>>) -> Self {
        self.published = Some(sender);
        self
    }

    fn publish(&self, node: Node) {
        if let Some(sender) = &self.published {
            sender.send_replace(Some(node));
        }
    }

    /// The machine facts changed (say a resize of nodefs); the next round reports them.
    pub fn set_machine(&mut self, machine: MachineFacts) {
        self.machine = machine;
    }

    /// The runtime answered CRI Version differently (it was upgraded or replaced).
    pub fn set_runtime_version(&mut self, version: String) {
        self.info.runtime_version = version;
    }

    /// One round: reads the Node, computes its status and posts it if needed.
    /// Answers whether it posted.
    pub async fn sync(&mut self) -> Result<bool, NodeStatusError> {
        let name = &self.info.node_name;
        let node_error = |action, source| NodeStatusError::Node {
            action,
            node: name.clone(),
            source: Box::new(source),
        };
        // GET nodes/NAME, as upstream: the Node authorizer lets a node read its Node but not
        // the nodes/status subresource.
        let node = self
            .nodes
            .get(name)
            .await
            .map_err(|e| node_error("get", e))?;
        let previous = node.status.clone().unwrap_or_default();
        let inputs = self.inputs.borrow().clone();
        let mut status = node_status(
            &self.info,
            &self.machine,
            &inputs,
            Some(&previous),
            Timestamp::now(),
        );
        if let Some(extended) = &self.extended {
            add_extended(&mut status, extended());
        }
        if let Some(volumes) = &self.volumes_in_use {
            // The API server stores an empty list as none; so must we, or every round differs.
            status.volumes_in_use = Some(volumes()).filter(|v| !v.is_empty());
        }
        let now = Instant::now();
        let report_due = self
            .last_report
            .is_none_or(|last| now >= last + self.config.report_frequency);
        if !report_due && !status_changed(&previous, &status) {
            self.publish(node);
            return Ok(false);
        }
        let patch = status_patch(&previous, &status);
        let patched = self
            .nodes
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(|e| node_error("patch the status of", e))?;
        self.publish(patched);
        self.last_report = Some(now);
        tracing::debug!(node = %name, "posted the node status");
        let events = status_events(name, Some(&previous), &status);
        record_node_events(&self.client, name, &events).await;
        Ok(true)
    }

    /// Runs rounds forever; after a failure the next round comes sooner, backing off.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.retry_initial, self.config.update_frequency);
        loop {
            let delay = match self.sync().await {
                Ok(_) => {
                    backoff.reset();
                    self.config.update_frequency
                }
                Err(e) => {
                    tracing::warn!(error = %e, "error updating the node status, will retry");
                    backoff.next_delay()
                }
            };
            tokio::time::sleep(delay).await;
        }
    }
}

/// A strategic merge patch carrying the fields the kubelet owns: addresses replace the list
/// (two InternalIPs share the merge key "type"), resources removed from capacity are nulled,
/// only the kubelet's own conditions are merged by type, and volumesInUse (a list without a
/// merge strategy) is replaced whole, or removed when empty. volumesAttached, the attach-detach
/// controller's, is never sent.
fn status_patch(previous: &NodeStatus, status: &NodeStatus) -> Value {
    let mut addresses = vec![json!({"$patch": "replace"})];
    addresses.extend(
        status
            .addresses
            .iter()
            .flatten()
            .map(|a| json!({"type": a.type_, "address": a.address})),
    );
    let conditions: Vec<Value> = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
        .map(|c| serde_json::to_value(c).expect("a condition serializes"))
        .collect();
    json!({
        "status": {
            "addresses": addresses,
            "capacity": map_patch(previous.capacity.as_ref(), status.capacity.as_ref()),
            "allocatable": map_patch(previous.allocatable.as_ref(), status.allocatable.as_ref()),
            "nodeInfo": status.node_info,
            "daemonEndpoints": status.daemon_endpoints,
            "conditions": conditions,
            "volumesInUse": status.volumes_in_use,
        }
    })
}

fn map_patch(
    old: Option<&BTreeMap<String, Quantity>>,
    new: Option<&BTreeMap<String, Quantity>>,
) -> Value {
    let mut patch: Map<String, Value> = old
        .into_iter()
        .flatten()
        .map(|(k, _)| (k.clone(), Value::Null))
        .collect();
    for (k, v) in new.into_iter().flatten() {
        patch.insert(k.clone(), json!(v.0));
    }
    Value::Object(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_carries_volumes_in_use_and_never_volumes_attached() {
        use k8s_openapi::api::core::v1::AttachedVolume;
        let attached = NodeStatus {
            volumes_attached: Some(vec![AttachedVolume {
                name: "kubernetes.io/csi/d^v".to_string(),
                device_path: String::new(),
            }]),
            ..NodeStatus::default()
        };
        let in_use = NodeStatus {
            volumes_in_use: Some(vec!["kubernetes.io/csi/d^v".to_string()]),
            ..attached.clone()
        };
        let patch = status_patch(&attached, &in_use);
        assert_eq!(
            patch["status"]["volumesInUse"],
            json!(["kubernetes.io/csi/d^v"])
        );
        assert!(patch["status"].get("volumesAttached").is_none());
        // No longer in use: the list goes.
        let patch = status_patch(&in_use, &attached);
        assert_eq!(patch["status"]["volumesInUse"], Value::Null);
        assert!(patch["status"].get("volumesAttached").is_none());
    }

    #[test]
    fn map_patch_nulls_removed_keys() {
        let old = BTreeMap::from([
            ("cpu".to_string(), Quantity("2".to_string())),
            ("hugepages-1Gi".to_string(), Quantity("1Gi".to_string())),
        ]);
        let new = BTreeMap::from([("cpu".to_string(), Quantity("4".to_string()))]);
        assert_eq!(
            map_patch(Some(&old), Some(&new)),
            json!({"cpu": "4", "hugepages-1Gi": null})
        );
    }
}
