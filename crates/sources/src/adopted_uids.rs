//! The UIDs of static pods the runtime already runs at kubelet start, adopted by the file and
//! HTTP sources for manifests without `metadata.uid`. Upstream derives such a UID from a Go dump
//! of its internal Pod type that we do not reproduce; adopting the running pod's UID keeps its
//! containers across a switch from the upstream kubelet (and across our own restarts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// (namespace, pod name on this node) -> UID, shared by the sources; empty by default.
#[derive(Debug, Clone, Default)]
pub struct AdoptedUids {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Running static pods not yet matched by a manifest.
    running: HashMap<(String, String), String>,
    /// Content hash -> adopted UID: a re-read of an unchanged manifest keeps the adopted UID.
    adopted: HashMap<String, String>,
}

impl AdoptedUids {
    pub fn new(running: HashMap<(String, String), String>) -> Self {
        AdoptedUids {
            inner: Arc::new(Mutex::new(State {
                running,
                adopted: HashMap::new(),
            })),
        }
    }

    /// The UID for a manifest without one whose content hash is `content_hash`: the UID adopted
    /// for this very content earlier, else the running pod's (taken once: an edited manifest is a
    /// new pod, as upstream), else the content hash.
    pub(crate) fn uid_for(&self, namespace: &str, name: &str, content_hash: String) -> String {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(uid) = state.adopted.get(&content_hash) {
            return uid.clone();
        }
        match state
            .running
            .remove(&(namespace.to_owned(), name.to_owned()))
        {
            Some(uid) => {
                tracing::info!(pod = %format!("{namespace}/{name}"), pod_uid = %uid, "adopted the running pod's UID for its static pod manifest");
                state.adopted.insert(content_hash, uid.clone());
                uid
            }
            None => content_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CONFIG_HASH_ANNOTATION;
    use crate::manifest::decode_pod_adopting;
    use crate::static_pod::Origin;
    use k8s_openapi::api::core::v1::Pod;
    use std::path::Path;

    const NODE: &str = "node1";

    fn manifest(namespace: &str, uid: Option<&str>, image: &str) -> String {
        let uid = uid
            .map(|u| format!(r#", "uid": "{u}""#))
            .unwrap_or_default();
        format!(
            r#"{{"apiVersion": "v1", "kind": "Pod",
                "metadata": {{"name": "etcd", "namespace": "{namespace}"{uid}}},
                "spec": {{"containers": [{{"name": "c", "image": "{image}"}}]}}}}"#
        )
    }

    fn running_etcd() -> AdoptedUids {
        AdoptedUids::new(
            [(
                ("kube-system".to_owned(), "etcd-node1".to_owned()),
                "running-uid".to_owned(),
            )]
            .into(),
        )
    }

    fn read(data: &str, adopted: &AdoptedUids) -> Pod {
        let origin = Origin::file(Path::new("/etc/kubernetes/manifests/etcd.yaml"));
        decode_pod_adopting(data.as_bytes(), &origin, NODE, adopted).unwrap()
    }

    fn uid(pod: &Pod) -> &str {
        pod.metadata.uid.as_deref().unwrap()
    }

    fn content_uid(data: &str) -> String {
        uid(&read(data, &AdoptedUids::default())).to_owned()
    }

    #[test]
    fn a_manifest_without_uid_adopts_the_running_pods_uid() {
        let pod = read(&manifest("kube-system", None, "etcd:1"), &running_etcd());
        assert_eq!(uid(&pod), "running-uid");
        let annotations = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[CONFIG_HASH_ANNOTATION], "running-uid");
    }

    #[test]
    fn an_explicit_uid_is_kept_and_adopts_nothing() {
        let adopted = running_etcd();
        let pod = read(&manifest("kube-system", Some("mine"), "etcd:1"), &adopted);
        assert_eq!(uid(&pod), "mine");
        let later = read(&manifest("kube-system", None, "etcd:1"), &adopted);
        assert_eq!(uid(&later), "running-uid");
    }

    #[test]
    fn rereads_keep_the_adopted_uid_until_the_manifest_changes() {
        let adopted = running_etcd();
        let first = manifest("kube-system", None, "etcd:1");
        assert_eq!(uid(&read(&first, &adopted)), "running-uid");
        assert_eq!(uid(&read(&first, &adopted)), "running-uid");

        let edited = manifest("kube-system", None, "etcd:2");
        let new_uid = uid(&read(&edited, &adopted)).to_owned();
        assert_eq!(new_uid, content_uid(&edited));
        assert_ne!(new_uid, "running-uid");
    }

    #[test]
    fn another_namespace_or_name_adopts_nothing() {
        let adopted = running_etcd();
        let elsewhere = manifest("default", None, "etcd:1");
        assert_eq!(uid(&read(&elsewhere, &adopted)), content_uid(&elsewhere));

        let origin = Origin::file(Path::new("/etc/kubernetes/manifests/etcd.yaml"));
        let other_node = manifest("kube-system", None, "etcd:1");
        let pod = decode_pod_adopting(other_node.as_bytes(), &origin, "node2", &adopted).unwrap();
        assert_ne!(uid(&pod), "running-uid");
        // Still there for its own pod.
        assert_eq!(uid(&read(&other_node, &adopted)), "running-uid");
    }
}
