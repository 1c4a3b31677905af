//! The pods the sources want, by UID (upstream pod manager): written by the sync loop, read by the
//! HTTP endpoints. Mirror pods (the API copies of static pods, annotation config.mirror) arrive
//! from the API source like any pod but are never run: they are kept apart, by full name, so the
//! kubelet knows which static pods already have one and where their status goes.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kubelet_sources::{
    API_SOURCE, CONFIG_HASH_ANNOTATION, CONFIG_MIRROR_ANNOTATION, CONFIG_SOURCE_ANNOTATION,
    PodOperation,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct PodManager {
    pods: Arc<RwLock<HashMap<String, Pod>>>,
    /// Mirror pods by full name (namespace/name).
    mirrors: Arc<RwLock<HashMap<String, Pod>>>,
    /// Woken on every change, for the mirror pod reconciler.
    changed: Arc<Notify>,
    /// Every source's first snapshot is in here, not only sent: set by the sync loop.
    sources_ready: Arc<AtomicBool>,
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// namespace/name, the key mirror pods and their static pods share.
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A mirror pod: the API's copy of a static pod (upstream IsMirrorPod).
pub fn is_mirror_pod(pod: &Pod) -> bool {
    annotation(pod, CONFIG_MIRROR_ANNOTATION).is_some()
}

/// A pod from a file or a URL rather than the API server (upstream IsStaticPod).
pub fn is_static_pod(pod: &Pod) -> bool {
    annotation(pod, CONFIG_SOURCE_ANNOTATION).is_some_and(|s| s != API_SOURCE)
}

/// A pod the API server gave the kubelet (config.source "api").
pub fn is_api_pod(pod: &Pod) -> bool {
    annotation(pod, CONFIG_SOURCE_ANNOTATION) == Some(API_SOURCE)
}

/// The static pod's config hash, which its mirror pod carries in config.mirror.
pub fn config_hash(pod: &Pod) -> &str {
    annotation(pod, CONFIG_HASH_ANNOTATION).unwrap_or_default()
}

/// The mirror pod is the API's copy of this very version of the static pod (upstream IsMirrorPodOf).
pub fn is_mirror_pod_of(mirror: &Pod, pod: &Pod) -> bool {
    full_name(mirror) == full_name(pod)
        && annotation(mirror, CONFIG_MIRROR_ANNOTATION) == Some(config_hash(pod))
}

impl PodManager {
    pub fn insert(&self, uid: String, pod: Pod) {
        self.pods.write().unwrap().insert(uid, pod);
        self.changed.notify_one();
    }

    pub fn remove(&self, uid: &str) -> Option<Pod> {
        let removed = self.pods.write().unwrap().remove(uid);
        self.changed.notify_one();
        removed
    }

    /// Marks that every source's first snapshot has been applied here. Until then a pod missing
    /// from the manager may only be on its way, so nothing may be removed for its absence.
    pub fn mark_sources_ready(&self) {
        if !self.sources_ready.swap(true, Ordering::AcqRel) {
            self.changed.notify_one();
        }
    }

    pub fn sources_ready(&self) -> bool {
        self.sources_ready.load(Ordering::Acquire)
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.pods.read().unwrap().contains_key(uid)
    }

    pub fn get(&self, uid: &str) -> Option<Pod> {
        self.pods.read().unwrap().get(uid).cloned()
    }

    pub fn uids(&self) -> Vec<String> {
        self.pods.read().unwrap().keys().cloned().collect()
    }

    /// Every pod, sorted by namespace and name.
    pub fn pods(&self) -> Vec<Pod> {
        let mut pods: Vec<Pod> = self.pods.read().unwrap().values().cloned().collect();
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        pods
    }

    /// Records what a source says of a mirror pod; a REMOVE forgets it unless a newer mirror (another
    /// UID) already took its place.
    pub fn update_mirror(&self, op: PodOperation, pod: Pod) {
        let key = full_name(&pod);
        let mut mirrors = self.mirrors.write().unwrap();
        match op {
            PodOperation::Remove => {
                if mirrors.get(&key).map(|m| &m.metadata.uid) == Some(&pod.metadata.uid) {
                    mirrors.remove(&key);
                }
            }
            _ => {
                mirrors.insert(key, pod);
            }
        }
        drop(mirrors);
        self.changed.notify_one();
    }

    /// Forgets a mirror pod the kubelet deleted itself, if it is still that one.
    pub fn forget_mirror(&self, mirror: &Pod) {
        self.update_mirror(PodOperation::Remove, mirror.clone());
    }

    /// The mirror pod of that full name (namespace/name), if the API has one.
    pub fn mirror_pod(&self, full_name: &str) -> Option<Pod> {
        self.mirrors.read().unwrap().get(full_name).cloned()
    }

    /// Every mirror pod, sorted by full name.
    pub fn mirror_pods(&self) -> Vec<Pod> {
        let mut mirrors: Vec<(String, Pod)> = self
            .mirrors
            .read()
            .unwrap()
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        mirrors.sort_by(|a, b| a.0.cmp(&b.0));
        mirrors.into_iter().map(|(_, p)| p).collect()
    }

    /// Where the pod's status lives in the API, as the kubelet last saw it: its own status for an
    /// API pod, its mirror pod's (UID and status) for a static pod; None when unknown.
    pub fn api_status(&self, uid: &str) -> Option<(String, PodStatus)> {
        let pod = self.get(uid)?;
        if is_static_pod(&pod) {
            let mirror = self.mirror_pod(&full_name(&pod))?;
            if !is_mirror_pod_of(&mirror, &pod) {
                return None;
            }
            return Some((
                mirror.metadata.uid.clone().unwrap_or_default(),
                mirror.status.unwrap_or_default(),
            ));
        }
        if !is_api_pod(&pod) {
            return None;
        }
        Some((uid.to_string(), pod.status.unwrap_or_default()))
    }

    /// Resolves when a pod or a mirror pod changed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, uid: &str, annotations: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                annotations: Some(
                    annotations
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
    fn mirror_pods_are_kept_apart_and_matched_by_hash() {
        let pods = PodManager::default();
        let static_pod = pod(
            "web-node",
            "h1",
            &[
                (CONFIG_SOURCE_ANNOTATION, "file"),
                (CONFIG_HASH_ANNOTATION, "h1"),
            ],
        );
        let mirror = pod(
            "web-node",
            "m1",
            &[
                (CONFIG_SOURCE_ANNOTATION, "file"),
                (CONFIG_MIRROR_ANNOTATION, "h1"),
            ],
        );
        assert!(is_static_pod(&static_pod) && !is_mirror_pod(&static_pod));
        assert!(is_mirror_pod(&mirror));
        pods.insert("h1".into(), static_pod.clone());
        pods.update_mirror(PodOperation::Add, mirror.clone());
        assert!(!pods.contains("m1"));
        assert_eq!(pods.api_status("h1").unwrap().0, "m1");

        let newer = pod("web-node", "m2", &[(CONFIG_MIRROR_ANNOTATION, "h2")]);
        pods.update_mirror(PodOperation::Add, newer);
        assert!(pods.api_status("h1").is_none(), "a mirror of another hash");
        // A late REMOVE of the old mirror does not forget the new one.
        pods.update_mirror(PodOperation::Remove, mirror);
        assert!(pods.mirror_pod("default/web-node").is_some());
    }

    #[test]
    fn api_pods_report_their_own_status() {
        let pods = PodManager::default();
        pods.insert(
            "u1".into(),
            pod("a", "u1", &[(CONFIG_SOURCE_ANNOTATION, "api")]),
        );
        assert_eq!(pods.api_status("u1").unwrap().0, "u1");
        pods.insert("u2".into(), pod("b", "u2", &[]));
        assert!(pods.api_status("u2").is_none());
    }
}
