//! The pods the sources want, by UID (upstream pod manager): written by the sync loop, read by the
//! HTTP endpoints.

use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Clone, Default)]
pub struct PodManager {
    pods: Arc<RwLock<HashMap<String, Pod>>>,
}

impl PodManager {
    pub fn insert(&self, uid: String, pod: Pod) {
        self.pods.write().unwrap().insert(uid, pod);
    }

    pub fn remove(&self, uid: &str) -> Option<Pod> {
        self.pods.write().unwrap().remove(uid)
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.pods.read().unwrap().contains_key(uid)
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
}
