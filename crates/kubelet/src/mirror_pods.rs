//! Mirror pods (upstream pod/mirror_client.go and the mirror handling of Kubelet.SyncPod and
//! HandlePodCleanups): every static pod gets a copy in the API server, so the cluster sees it.
//! The copy carries the static pod's config hash in kubernetes.io/config.mirror and is owned by
//! the Node. It is made again when deleted, replaced when the static pod changes (another hash)
//! or someone asks to delete it (deletionTimestamp), and deleted when its static pod is gone.
//!
//! The kubelet learns what mirror pods exist from its API source: the sync loop hands them to the
//! pod manager instead of running them. A reconcile runs on every pod change and every
//! [`RESYNC_PERIOD`].
//!
//! Wiring, in cluster mode, with the PodManager the sync loop gets:
//! `tokio::spawn(MirrorPods::new(client, node_name, node, pods.clone())
//! .with_status(status.clone()).run())`, where `node` is a `watch::Receiver<Option<Node>>` of
//! the registered Node.

use crate::pod_manager::{PodManager, config_hash, full_name, is_mirror_pod_of, is_static_pod};
use crate::status::StatusManager;
use crate::status::api_sync::is_code;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kubelet_sources::CONFIG_MIRROR_ANNOTATION;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

/// A reconcile runs at least this often, to retry what failed.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum MirrorPodError {
    #[error("failed creating a mirror pod for {pod}: {source}")]
    Create { pod: String, source: kube::Error },
    #[error("failed deleting mirror pod {pod}: {source}")]
    Delete { pod: String, source: kube::Error },
}

pub struct MirrorPods {
    client: kube::Client,
    node_name: String,
    /// The Node object once registered: its UID owns the mirror pods.
    node: watch::Receiver<Option<Node>>,
    pods: PodManager,
    status: Option<Arc<StatusManager>>,
}

/// The mirror pod of a static pod (upstream CreateMirrorPod): its metadata and spec, the config
/// hash in config.mirror, owned by the Node; the API server sets its own UID and status.
pub fn mirror_of(pod: &Pod, node_name: &str, node_uid: &str) -> Pod {
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(
        CONFIG_MIRROR_ANNOTATION.to_string(),
        config_hash(pod).to_string(),
    );
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            labels: pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node_name.to_string(),
                uid: node_uid.to_string(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: pod.spec.clone().map(|mut spec| {
            spec.node_name = Some(node_name.to_string());
            spec
        }),
        status: None,
    }
}

impl MirrorPods {
    /// `node` carries the Node object once registered (mirror pods wait for it, and are not made
    /// while the Node is being deleted); `pods` is the
    /// kubelet's pod manager, which the sync loop fills with static pods and mirror pods; orphaned
    /// mirror pods are only deleted once the sync loop has put every source's pods in it.
    pub fn new(
        client: kube::Client,
        node_name: String,
        node: watch::Receiver<Option<Node>>,
        pods: PodManager,
    ) -> Self {
        Self {
            client,
            node_name,
            node,
            pods,
            status: None,
        }
    }

    /// Asks the status manager to write a static pod's status as soon as its mirror exists.
    pub fn with_status(mut self, status: Arc<StatusManager>) -> Self {
        self.status = Some(status);
        self
    }

    /// Reconciles on every pod change, Node change and [`RESYNC_PERIOD`], forever.
    pub async fn run(mut self) {
        let mut node_watched = true;
        loop {
            if let Err(e) = self.sync().await {
                tracing::error!("{e}");
            }
            let pods = self.pods.clone();
            tokio::select! {
                _ = pods.changed() => {}
                // A closed watch keeps its last Node.
                changed = self.node.changed(), if node_watched => node_watched = changed.is_ok(),
                _ = tokio::time::sleep(RESYNC_PERIOD) => {}
            }
        }
    }

    /// One reconcile of every static pod with its mirror pod; returns the first failure after
    /// trying them all.
    pub async fn sync(&self) -> Result<(), MirrorPodError> {
        let mut first_error = None;
        let statics: Vec<Pod> = self.pods.pods().into_iter().filter(is_static_pod).collect();
        for pod in &statics {
            if let Err(e) = self.sync_static_pod(pod).await {
                first_error.get_or_insert(e);
            }
        }
        if self.pods.sources_ready() {
            let names: std::collections::HashSet<String> = statics.iter().map(full_name).collect();
            for mirror in self.pods.mirror_pods() {
                if names.contains(&full_name(&mirror)) {
                    continue;
                }
                tracing::info!(pod = %full_name(&mirror), "deleting orphaned mirror pod");
                if let Err(e) = self.delete(&mirror).await {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn sync_static_pod(&self, pod: &Pod) -> Result<(), MirrorPodError> {
        let name = full_name(pod);
        if let Some(mirror) = self.pods.mirror_pod(&name) {
            if mirror.metadata.deletion_timestamp.is_none() && is_mirror_pod_of(&mirror, pod) {
                return Ok(());
            }
            tracing::info!(pod = %name, mirror_uid = mirror.metadata.uid.as_deref().unwrap_or_default(), "deleting mirror pod because it is outdated");
            self.delete(&mirror).await?;
        }
        let node_uid = {
            let node = self.node.borrow();
            match node.as_ref() {
                None => {
                    tracing::debug!(pod = %name, "no need to create a mirror pod, since failed to get node info from the cluster");
                    return Ok(());
                }
                Some(n) if n.metadata.deletion_timestamp.is_some() => {
                    tracing::debug!(pod = %name, "no need to create a mirror pod, since node has been removed from the cluster");
                    return Ok(());
                }
                Some(n) => n.metadata.uid.clone().unwrap_or_default(),
            }
        };
        let mirror = mirror_of(pod, &self.node_name, &node_uid);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        tracing::info!(pod = %name, "creating a mirror pod for static pod");
        match api.create(&PostParams::default(), &mirror).await {
            Ok(created) => self
                .pods
                .update_mirror(kubelet_sources::PodOperation::Add, created),
            // Made by an earlier pass the API source has not reported yet; if it is of
            // another hash, the next pass sees it and replaces it.
            Err(e) if is_code(&e, 409) => {}
            Err(source) => return Err(MirrorPodError::Create { pod: name, source }),
        }
        if let (Some(status), Some(uid)) = (&self.status, pod.metadata.uid.as_deref()) {
            status.resync(uid);
        }
        Ok(())
    }

    /// Deletes a mirror pod at once, that very one (upstream DeleteMirrorPod).
    async fn delete(&self, mirror: &Pod) -> Result<(), MirrorPodError> {
        let namespace = mirror.metadata.namespace.as_deref().unwrap_or("default");
        let name = mirror.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: mirror.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {}
            // Already gone, or replaced by another: nothing of ours to delete.
            Err(e) if is_code(&e, 404) || is_code(&e, 409) => {}
            Err(source) => {
                return Err(MirrorPodError::Delete {
                    pod: full_name(mirror),
                    source,
                });
            }
        }
        self.pods.forget_mirror(mirror);
        Ok(())
    }
}
