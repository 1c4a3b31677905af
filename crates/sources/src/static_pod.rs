//! What the kubelet adds to a pod that comes from a file or a URL (upstream config/common.go
//! applyDefaults): its name on this node, its UID, its node, the config annotations.

use k8s_openapi::api::core::v1::{Pod, Toleration};
use sha2::{Digest, Sha256};

use crate::{AdoptedUids, FILE_SOURCE, LOCAL_SOURCE};

/// Hash of the pod as its source defined it; equals the UID unless the manifest set one.
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// The source name: "file", "http", "api" or "local".
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// When the kubelet first saw the pod (RFC 3339); the mux sets it, change detection ignores it.
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
/// On a mirror pod: the config hash of the static pod it mirrors.
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Where a manifest came from: the source name and the file path or URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: &'static str,
    pub location: String,
}

impl Origin {
    pub fn file(path: &std::path::Path) -> Self {
        Self::file_in(FILE_SOURCE, path)
    }

    /// A manifest file read by a directory source other than the file source.
    pub fn file_in(source: &'static str, path: &std::path::Path) -> Self {
        Origin {
            source,
            location: path.display().to_string(),
        }
    }

    pub fn url(url: &str) -> Self {
        Origin {
            source: crate::HTTP_SOURCE,
            location: url.to_owned(),
        }
    }
}

/// Applies the static pod defaults to a pod that already has the API server's defaults. A pod
/// without a UID gets the one `adopted` holds for it, else its content hash.
pub fn apply(pod: &mut Pod, origin: &Origin, node_name: &str, adopted: &AdoptedUids) {
    let hash = content_hash(pod, origin, node_name);
    let metadata = &mut pod.metadata;
    let name = metadata.name.as_deref().unwrap_or("");
    metadata.name = Some(format!("{name}-{}", node_name.to_lowercase()));
    if metadata.namespace.as_deref().unwrap_or("").is_empty() {
        metadata.namespace = Some("default".to_owned());
    }
    if metadata.uid.as_deref().unwrap_or("").is_empty() {
        let namespace = metadata.namespace.as_deref().unwrap_or("");
        let name = metadata.name.as_deref().unwrap_or("");
        metadata.uid = Some(adopted.uid_for(namespace, name, hash));
    }
    // Upstream's config hash is the UID, given or generated: mirror pods carry it, so a node
    // switched from the Go kubelet keeps their mirror pods.
    let config_hash = metadata.uid.clone().unwrap_or_default();
    let annotations = metadata.annotations.get_or_insert_with(Default::default);
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash);
    annotations.insert(
        CONFIG_SOURCE_ANNOTATION.to_owned(),
        origin.source.to_owned(),
    );

    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.to_owned());
    // Upstream tolerates NoExecute taints for file pods only, so node problems never evict them;
    // local pods are static pods from a directory too.
    if matches!(origin.source, FILE_SOURCE | LOCAL_SOURCE) {
        add_or_update_toleration(
            spec.tolerations.get_or_insert_with(Vec::new),
            Toleration {
                operator: Some("Exists".to_owned()),
                effect: Some("NoExecute".to_owned()),
                ..Default::default()
            },
        );
    }
    pod.status.get_or_insert_with(Default::default).phase = Some("Pending".to_owned());
}

/// A deterministic 128-bit hex digest of the pod, the node and the manifest's location, in the
/// shape of upstream's UIDs (32 hex digits). The same manifest on another node or at another path
/// is another pod.
fn content_hash(pod: &Pod, origin: &Origin, node_name: &str) -> String {
    let mut hasher = Sha256::new();
    // k8s-openapi serializes fields in a fixed order and maps as BTreeMaps: stable bytes.
    hasher.update(serde_json::to_vec(pod).expect("a Pod always serializes"));
    hasher.update(format!("host:{node_name}"));
    hasher.update(format!("{}:{}", origin.source, origin.location));
    hasher.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Replaces a toleration matching on key, operator, value and effect, else appends it.
fn add_or_update_toleration(tolerations: &mut Vec<Toleration>, toleration: Toleration) {
    let matches = |t: &Toleration| {
        t.key == toleration.key
            && t.operator == toleration.operator
            && t.value == toleration.value
            && t.effect == toleration.effect
    };
    match tolerations.iter_mut().find(|t| matches(t)) {
        Some(existing) => *existing = toleration,
        None => tolerations.push(toleration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn web() -> Pod {
        pod(
            json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "a", "image": "x"}]}}),
        )
    }

    fn applied(mut pod: Pod, origin: &Origin, node: &str) -> Pod {
        apply(&mut pod, origin, node, &AdoptedUids::default());
        pod
    }

    #[test]
    fn name_namespace_node_and_status() {
        let origin = Origin::file(Path::new("/etc/kubernetes/manifests/web.yaml"));
        let pod = applied(web(), &origin, "Node-A");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-a"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node-A"));
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );
        let annotations = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[CONFIG_SOURCE_ANNOTATION], "file");
        assert_eq!(
            Some(&annotations[CONFIG_HASH_ANNOTATION]),
            pod.metadata.uid.as_ref()
        );
    }

    #[test]
    fn explicit_namespace_is_kept() {
        let mut p = web();
        p.metadata.namespace = Some("kube-system".to_owned());
        let pod = applied(p, &Origin::url("http://h/p"), "n");
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
    }

    #[test]
    fn uid_is_deterministic_and_depends_on_content_node_and_location() {
        let origin = Origin::file(Path::new("/m/web.yaml"));
        let uid = |pod: Pod, origin: &Origin, node: &str| {
            applied(pod, origin, node).metadata.uid.unwrap()
        };
        let first = uid(web(), &origin, "n1");
        assert_eq!(first.len(), 32);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(first, uid(web(), &origin, "n1"));
        assert_ne!(first, uid(web(), &origin, "n2"));
        assert_ne!(
            first,
            uid(web(), &Origin::file(Path::new("/m/other.yaml")), "n1")
        );
        assert_ne!(first, uid(web(), &Origin::url("/m/web.yaml"), "n1"));
        let mut changed = web();
        changed.spec.as_mut().unwrap().containers[0].image = Some("y".to_owned());
        assert_ne!(first, uid(changed, &origin, "n1"));
    }

    #[test]
    fn uid_from_the_manifest_is_kept() {
        let mut p = web();
        p.metadata.uid = Some("my-uid".to_owned());
        let pod = applied(p, &Origin::file(Path::new("/m/web.yaml")), "n1");
        assert_eq!(pod.metadata.uid.as_deref(), Some("my-uid"));
        let hash = &pod.metadata.annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION];
        assert_eq!(hash, "my-uid");
    }

    #[test]
    fn file_pods_tolerate_no_execute_once() {
        let mut p = web();
        p.spec.as_mut().unwrap().tolerations = Some(vec![
            Toleration {
                key: Some("dedicated".to_owned()),
                operator: Some("Equal".to_owned()),
                value: Some("x".to_owned()),
                effect: Some("NoSchedule".to_owned()),
                ..Default::default()
            },
            Toleration {
                operator: Some("Exists".to_owned()),
                effect: Some("NoExecute".to_owned()),
                toleration_seconds: Some(5),
                ..Default::default()
            },
        ]);
        let pod = applied(p, &Origin::file(Path::new("/m/web.yaml")), "n1");
        let tolerations = pod.spec.unwrap().tolerations.unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0].key.as_deref(), Some("dedicated"));
        assert_eq!(tolerations[1].toleration_seconds, None);
        assert_eq!(tolerations[1].effect.as_deref(), Some("NoExecute"));
    }

    #[test]
    fn http_pods_get_no_toleration() {
        let pod = applied(web(), &Origin::url("http://h/p"), "n1");
        assert_eq!(pod.spec.unwrap().tolerations, None);
        let annotations = pod.metadata.annotations.unwrap();
        assert_eq!(annotations[CONFIG_SOURCE_ANNOTATION], "http");
    }
}
