//! The bench's pods: one busybox container each, stopped fast (a TERM trap and a one-second grace
//! period) so that removal figures measure the kubelet, not a grace period.

use crate::runtime_env::BUSYBOX;
use kubelet_kuberuntime::labels::POD_NAME_LABEL;
use std::collections::HashMap;

/// Every bench pod's manifest name starts with this, so the bench recognises its pods in a
/// runtime it shares.
const PREFIX: &str = "kb-";

/// One pod of the bench: its manifest name and the name the kubelet gives it on the node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BenchPod {
    /// The manifest's metadata.name, also its file name (NAME.yaml).
    pub name: String,
    /// NAME-NODE, the static pod's name and its `io.kubernetes.pod.name` label.
    pub full_name: String,
}

impl BenchPod {
    pub fn new(group: &str, index: usize, node: &str) -> Self {
        let name = format!("{PREFIX}{group}-{index}");
        BenchPod {
            full_name: format!("{name}-{node}"),
            name,
        }
    }

    pub fn file_name(&self) -> String {
        format!("{}.yaml", self.name)
    }

    pub fn manifest(&self) -> String {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
"#,
            name = self.name
        )
    }
}

/// `count` pods of `group`, numbered from 0.
pub fn group(group: &str, count: usize, node: &str) -> Vec<BenchPod> {
    (0..count).map(|i| BenchPod::new(group, i, node)).collect()
}

/// The bench pod a CRI object belongs to, by its pod name label: `Some(full name)` for pods
/// of this bench on `node`.
pub fn bench_pod_name<'a>(labels: &'a HashMap<String, String>, node: &str) -> Option<&'a str> {
    let name = labels.get(POD_NAME_LABEL)?;
    (name.starts_with(PREFIX) && name.ends_with(&format!("-{node}"))).then_some(name.as_str())
}

/// Containers each bench pod runs.
pub const CONTAINERS_PER_POD: usize = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_named_after_group_index_and_node() {
        let pod = BenchPod::new("burst", 7, "node-a");
        assert_eq!(pod.name, "kb-burst-7");
        assert_eq!(pod.full_name, "kb-burst-7-node-a");
        assert_eq!(pod.file_name(), "kb-burst-7.yaml");
    }

    #[test]
    fn only_this_nodes_bench_pods_are_recognised() {
        let labels = |name: &str| HashMap::from([(POD_NAME_LABEL.to_string(), name.to_string())]);
        assert_eq!(
            bench_pod_name(&labels("kb-burst-7-node-a"), "node-a"),
            Some("kb-burst-7-node-a")
        );
        assert_eq!(bench_pod_name(&labels("kb-burst-7-node-b"), "node-a"), None);
        assert_eq!(bench_pod_name(&labels("web-node-a"), "node-a"), None);
        assert_eq!(bench_pod_name(&HashMap::new(), "node-a"), None);
    }

    #[test]
    fn the_manifest_decodes_as_a_static_pod_with_a_fast_stop() {
        let pod = BenchPod::new("single", 0, "node-a");
        let origin = kubelet_sources::Origin::file(std::path::Path::new("/m/kb-single-0.yaml"));
        let decoded =
            kubelet_sources::decode_pod(pod.manifest().as_bytes(), &origin, "node-a").unwrap();
        assert_eq!(decoded.metadata.name.as_deref(), Some("kb-single-0-node-a"));
        let spec = decoded.spec.unwrap();
        assert_eq!(spec.termination_grace_period_seconds, Some(1));
        assert_eq!(spec.containers.len(), CONTAINERS_PER_POD);
    }
}
