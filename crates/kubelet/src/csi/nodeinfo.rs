//! What a registered CSI driver puts in the cluster (upstream pkg/volume/csi/nodeinfomanager):
//! the node's `csi.volume.kubernetes.io/nodeid` annotation (a JSON map of driver name to node
//! id), node labels from the driver's accessible topology, and the driver's entry in the node's
//! CSINode (created owned by the Node when missing). Deregistration removes the annotation entry
//! and the CSINode entry; topology labels stay, as upstream.
//!
//! The cluster side is level-triggered: each driver's wanted state is recorded and one task
//! applies it, retrying with backoff until the API server takes it, so a driver that registers
//! before the Node exists, or while the API server is away, still lands.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec, VolumeNodeResources};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The Node annotation holding each driver's node id.
pub const ANNOTATION_NODE_ID: &str = "csi.volume.kubernetes.io/nodeid";

/// Retry delays after a failed update: from upstream's first backoff step up to a cap.
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// What NodeGetInfo answered.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverNodeInfo {
    pub node_id: String,
    pub max_volumes: i64,
    pub topology: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Wanted {
    Installed(DriverNodeInfo),
    Uninstalled,
}

#[derive(Default)]
struct Pending {
    generation: u64,
    /// Per driver: the generation it was wanted at, and what is wanted.
    drivers: BTreeMap<String, (u64, Wanted)>,
}

struct Shared {
    client: kube::Client,
    node_name: String,
    pending: Mutex<Pending>,
    wake: Notify,
}

/// Keeps the Node and CSINode in line with the registered drivers.
#[derive(Clone)]
pub struct NodeInfoManager {
    shared: Arc<Shared>,
}

impl NodeInfoManager {
    /// Starts the task that applies the drivers' node info for `node_name`.
    pub fn start(client: kube::Client, node_name: String) -> Self {
        let manager = NodeInfoManager {
            shared: Arc::new(Shared {
                client,
                node_name,
                pending: Mutex::new(Pending::default()),
                wake: Notify::new(),
            }),
        };
        tokio::spawn(manager.clone().run());
        manager
    }

    pub fn install(&self, driver: &str, info: DriverNodeInfo) {
        self.want(driver, Wanted::Installed(info));
    }

    pub fn uninstall(&self, driver: &str) {
        self.want(driver, Wanted::Uninstalled);
    }

    fn want(&self, driver: &str, wanted: Wanted) {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        pending.generation += 1;
        let generation = pending.generation;
        pending
            .drivers
            .insert(driver.to_string(), (generation, wanted));
        drop(pending);
        self.shared.wake.notify_one();
    }

    async fn run(self) {
        let mut delay = RETRY_FIRST;
        loop {
            let work: Vec<(String, (u64, Wanted))> = {
                let pending = self
                    .shared
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                pending
                    .drivers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            let mut failed = false;
            for (driver, (generation, wanted)) in work {
                let outcome = match &wanted {
                    Wanted::Installed(info) => self.try_install(&driver, info).await,
                    Wanted::Uninstalled => self.try_uninstall(&driver).await,
                };
                match outcome {
                    Ok(()) => {
                        tracing::info!(
                            driver,
                            node = self.shared.node_name,
                            installed = matches!(wanted, Wanted::Installed(_)),
                            "CSI driver node info updated"
                        );
                        let mut pending = self
                            .shared
                            .pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        if pending.drivers.get(&driver).map(|(g, _)| *g) == Some(generation) {
                            pending.drivers.remove(&driver);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(driver, node = self.shared.node_name, "{e}");
                        failed = true;
                    }
                }
            }
            if failed {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.shared.wake.notified() => {}
                }
                delay = (delay * 5).min(RETRY_MAX);
            } else {
                delay = RETRY_FIRST;
                self.shared.wake.notified().await;
            }
        }
    }

    async fn try_install(&self, driver: &str, info: &DriverNodeInfo) -> Result<(), String> {
        self.update_node(|node| install_node_patch(node, driver, info))
            .await
            .map_err(|e| format!("error updating Node object with CSI driver node info: {e}"))?;
        self.update_csinode(driver, info)
            .await
            .map_err(|e| format!("error updating CSINode object with CSI driver node info: {e}"))
    }

    async fn try_uninstall(&self, driver: &str) -> Result<(), String> {
        self.uninstall_from_csinode(driver)
            .await
            .map_err(|e| format!("error uninstalling CSI driver from CSINode object {e}"))?;
        self.update_node(|node| uninstall_node_patch(node, driver))
            .await
            .map_err(|e| format!("error removing CSI driver node info from Node object {e}"))
    }

    async fn update_node(
        &self,
        patch: impl Fn(&Node) -> Result<Option<Value>, String>,
    ) -> Result<(), String> {
        let nodes: Api<Node> = Api::all(self.shared.client.clone());
        let node = nodes
            .get(&self.shared.node_name)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(patch) = patch(&node)? {
            nodes
                .patch(
                    &self.shared.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn update_csinode(&self, driver: &str, info: &DriverNodeInfo) -> Result<(), String> {
        let csinodes: Api<CSINode> = Api::all(self.shared.client.clone());
        let mut csinode = match csinodes.get_opt(&self.shared.node_name).await {
            Ok(Some(c)) => c,
            Ok(None) => self.create_csinode(&csinodes).await?,
            Err(e) => return Err(e.to_string()),
        };
        if install_driver(&mut csinode, driver, info) {
            csinodes
                .replace(&self.shared.node_name, &PostParams::default(), &csinode)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Upstream's CreateCSINode: no drivers yet, owned by the Node so it goes with it.
    async fn create_csinode(&self, csinodes: &Api<CSINode>) -> Result<CSINode, String> {
        let nodes: Api<Node> = Api::all(self.shared.client.clone());
        let node = nodes
            .get(&self.shared.node_name)
            .await
            .map_err(|e| e.to_string())?;
        let csinode = CSINode {
            metadata: ObjectMeta {
                name: Some(self.shared.node_name.clone()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: self.shared.node_name.clone(),
                    uid: node.metadata.uid.unwrap_or_default(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: CSINodeSpec { drivers: vec![] },
        };
        csinodes
            .create(&PostParams::default(), &csinode)
            .await
            .map_err(|e| e.to_string())
    }

    async fn uninstall_from_csinode(&self, driver: &str) -> Result<(), String> {
        let csinodes: Api<CSINode> = Api::all(self.shared.client.clone());
        let Some(mut csinode) = csinodes
            .get_opt(&self.shared.node_name)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let before = csinode.spec.drivers.len();
        csinode.spec.drivers.retain(|d| d.name != driver);
        if csinode.spec.drivers.len() != before {
            csinodes
                .replace(&self.shared.node_name, &PostParams::default(), &csinode)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The node's driver → node id map, from its annotation.
fn node_ids(node: &Node) -> Result<BTreeMap<String, String>, String> {
    let Some(value) = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_NODE_ID))
        .filter(|v| !v.is_empty())
    else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_str::<Option<BTreeMap<String, String>>>(value)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            format!(
                "failed to parse node's {ANNOTATION_NODE_ID:?} annotation value ({value:?}) err={e}"
            )
        })
}

fn metadata_patch(annotations: Map<String, Value>, labels: Map<String, Value>) -> Option<Value> {
    let mut metadata = Map::new();
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    if !labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(labels));
    }
    (!metadata.is_empty()).then(|| json!({ "metadata": metadata }))
}

/// The merge patch adding the driver's node id and topology labels, or None when in place.
/// A topology label the node already has with another value is an error, as upstream.
fn install_node_patch(
    node: &Node,
    driver: &str,
    info: &DriverNodeInfo,
) -> Result<Option<Value>, String> {
    let mut ids = node_ids(node)?;
    let mut annotations = Map::new();
    if ids.get(driver) != Some(&info.node_id) {
        ids.insert(driver.to_string(), info.node_id.clone());
        let value = serde_json::to_string(&ids).map_err(|e| e.to_string())?;
        annotations.insert(ANNOTATION_NODE_ID.into(), value.into());
    }
    let empty = BTreeMap::new();
    let existing = node.metadata.labels.as_ref().unwrap_or(&empty);
    let mut labels = Map::new();
    for (k, v) in &info.topology {
        match existing.get(k) {
            Some(current) if current != v => {
                return Err(format!(
                    "detected topology value collision: driver reported {k:?}:{v:?} but existing label is {k:?}:{current:?}"
                ));
            }
            Some(_) => {}
            None => {
                labels.insert(k.clone(), v.clone().into());
            }
        }
    }
    Ok(metadata_patch(annotations, labels))
}

/// The merge patch removing the driver's node id (the whole annotation with the last one).
fn uninstall_node_patch(node: &Node, driver: &str) -> Result<Option<Value>, String> {
    let mut ids = node_ids(node)?;
    if ids.remove(driver).is_none() {
        return Ok(None);
    }
    let value = if ids.is_empty() {
        Value::Null
    } else {
        serde_json::to_string(&ids)
            .map_err(|e| e.to_string())?
            .into()
    };
    let annotations = Map::from_iter([(ANNOTATION_NODE_ID.to_string(), value)]);
    Ok(metadata_patch(annotations, Map::new()))
}

/// Puts the driver's entry last in the CSINode's drivers; false when it was already right.
fn install_driver(csinode: &mut CSINode, driver: &str, info: &DriverNodeInfo) -> bool {
    let keys: Vec<String> = info.topology.keys().cloned().collect();
    let current = csinode.spec.drivers.iter().find(|d| d.name == driver);
    if current.is_some_and(|d| {
        d.node_id == info.node_id && {
            let mut have = d.topology_keys.clone().unwrap_or_default();
            have.sort();
            have.dedup();
            have == keys
        }
    }) {
        return false;
    }
    csinode.spec.drivers.retain(|d| d.name != driver);
    let allocatable = if info.max_volumes > 0 {
        let count = info.max_volumes.min(i64::from(i32::MAX)) as i32;
        Some(VolumeNodeResources { count: Some(count) })
    } else {
        tracing::error!(
            driver,
            "Invalid attach limit value {} cannot be added to CSINode object for {driver:?}",
            info.max_volumes
        );
        None
    };
    csinode.spec.drivers.push(CSINodeDriver {
        name: driver.to_string(),
        node_id: info.node_id.clone(),
        topology_keys: Some(keys),
        allocatable,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(node_id: &str, topology: &[(&str, &str)]) -> DriverNodeInfo {
        DriverNodeInfo {
            node_id: node_id.into(),
            max_volumes: 3,
            topology: topology
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn node(annotation: Option<&str>, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                annotations: annotation
                    .map(|a| BTreeMap::from([(ANNOTATION_NODE_ID.to_string(), a.to_string())])),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn install_adds_the_node_id_to_the_map_and_the_topology_labels() {
        let n = node(Some(r#"{"other":"o-1"}"#), &[("zone", "z1")]);
        let patch = install_node_patch(&n, "drv", &info("n-1", &[("zone", "z1"), ("rack", "r")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {
                "annotations": {ANNOTATION_NODE_ID: r#"{"drv":"n-1","other":"o-1"}"#},
                "labels": {"rack": "r"},
            }})
        );
        let done = node(Some(r#"{"drv":"n-1"}"#), &[("zone", "z1")]);
        assert_eq!(
            install_node_patch(&done, "drv", &info("n-1", &[("zone", "z1")])).unwrap(),
            None
        );
    }

    #[test]
    fn a_topology_collision_is_refused_with_upstreams_message() {
        let n = node(None, &[("zone", "z2")]);
        assert_eq!(
            install_node_patch(&n, "drv", &info("n-1", &[("zone", "z1")])).unwrap_err(),
            r#"detected topology value collision: driver reported "zone":"z1" but existing label is "zone":"z2""#
        );
    }

    #[test]
    fn uninstall_removes_the_entry_and_the_annotation_with_the_last_one() {
        let two = node(Some(r#"{"drv":"n-1","other":"o-1"}"#), &[]);
        assert_eq!(
            uninstall_node_patch(&two, "drv").unwrap().unwrap(),
            json!({"metadata": {"annotations": {ANNOTATION_NODE_ID: r#"{"other":"o-1"}"#}}})
        );
        let one = node(Some(r#"{"drv":"n-1"}"#), &[]);
        assert_eq!(
            uninstall_node_patch(&one, "drv").unwrap().unwrap(),
            json!({"metadata": {"annotations": {ANNOTATION_NODE_ID: null}}})
        );
        assert_eq!(uninstall_node_patch(&one, "absent").unwrap(), None);
        assert!(uninstall_node_patch(&node(Some("{bad"), &[]), "drv").is_err());
    }

    #[test]
    fn the_csinode_entry_is_replaced_only_when_it_changed() {
        let mut c = CSINode::default();
        assert!(install_driver(
            &mut c,
            "drv",
            &info("n-1", &[("b", "1"), ("a", "2")])
        ));
        assert_eq!(c.spec.drivers.len(), 1);
        let d = &c.spec.drivers[0];
        assert_eq!(
            d.topology_keys,
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(d.allocatable.as_ref().unwrap().count, Some(3));
        assert!(!install_driver(
            &mut c,
            "drv",
            &info("n-1", &[("a", "2"), ("b", "1")])
        ));
        assert!(install_driver(&mut c, "drv", &info("n-2", &[])));
        assert_eq!(c.spec.drivers.len(), 1);
        assert_eq!(c.spec.drivers[0].node_id, "n-2");
    }
}
