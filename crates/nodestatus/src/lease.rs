//! The node Lease heartbeat (upstream nodelease and component-helpers' lease controller).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{Timestamp, Unit};
use kube::api::{Api, PostParams};

use crate::NodeStatusError;
use crate::backoff::Backoff;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    /// How often the lease is renewed: upstream takes a quarter of its duration.
    pub renew_interval: Duration,
    /// nodeLeaseDurationSeconds.
    pub lease_duration_seconds: i32,
    /// Back-off between retries after a failed renewal, as upstream's 200 ms doubling to 7 s.
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            namespace: "kube-node-lease".to_string(),
            renew_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(7),
        }
    }
}

/// Keeps `kube-node-lease/<node>` renewed, held by the node and owned by its Node object so
/// that the Lease goes when the Node is deleted.
pub struct LeaseLoop {
    leases: Api<Lease>,
    nodes: Api<Node>,
    node_name: String,
    config: LeaseConfig,
    /// The lease as last written, so that a renewal is a single update; cleared on any
    /// failure so that the next attempt starts from the API's copy.
    latest: Option<Lease>,
}

impl LeaseLoop {
    pub fn new(client: kube::Client, node_name: String, config: LeaseConfig) -> Self {
        LeaseLoop {
            leases: Api::namespaced(client.clone(), &config.namespace),
            nodes: Api::all(client),
            node_name,
            config,
            latest: None,
        }
    }

    /// Creates or renews the lease once.
    pub async fn renew(&mut self) -> Result<Lease, NodeStatusError> {
        let result = self.try_renew().await;
        match &result {
            Ok(lease) => self.latest = Some(lease.clone()),
            Err(_) => self.latest = None,
        }
        result
    }

    async fn try_renew(&mut self) -> Result<Lease, NodeStatusError> {
        let current = match self.latest.take() {
            Some(lease) => Some(lease),
            None => self
                .leases
                .get_opt(&self.node_name)
                .await
                .map_err(|e| self.lease_error("get", e))?,
        };
        match current {
            Some(lease) => {
                let renewed = self.renewed(lease).await;
                self.leases
                    .replace(&self.node_name, &PostParams::default(), &renewed)
                    .await
                    .map_err(|e| self.lease_error("update", e))
            }
            None => {
                let fresh = self.renewed(Lease::default()).await;
                self.leases
                    .create(&PostParams::default(), &fresh)
                    .await
                    .map_err(|e| self.lease_error("create", e))
            }
        }
    }

    /// `lease` held by this node for another term from now, with the Node as its owner once
    /// the Node can be found.
    async fn renewed(&self, mut lease: Lease) -> Lease {
        let now = Timestamp::now();
        lease.metadata.name = Some(self.node_name.clone());
        lease.metadata.namespace = Some(self.config.namespace.clone());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.node_name.clone());
        spec.lease_duration_seconds = Some(self.config.lease_duration_seconds);
        spec.renew_time = Some(MicroTime(now.round(Unit::Microsecond).unwrap_or(now)));
        if lease
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            lease.metadata.owner_references = self.node_owner().await.map(|owner| vec![owner]);
        }
        lease
    }

    /// The Node as an owner reference; None while it cannot be read, as upstream then writes
    /// the lease without an owner and adds it on a later renewal.
    async fn node_owner(&self) -> Option<OwnerReference> {
        match self.nodes.get_opt(&self.node_name).await {
            Ok(Some(Node {
                metadata:
                    ObjectMeta {
                        uid: Some(uid),
                        name: Some(name),
                        ..
                    },
                ..
            })) => Some(OwnerReference {
                api_version: "v1".to_string(),
                kind: "Node".to_string(),
                name,
                uid,
                ..OwnerReference::default()
            }),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(node = %self.node_name, error = %e, "cannot read the node to own its lease");
                None
            }
        }
    }

    fn lease_error(&self, action: &'static str, source: kube::Error) -> NodeStatusError {
        NodeStatusError::Lease {
            action,
            namespace: self.config.namespace.clone(),
            name: self.node_name.clone(),
            source: Box::new(source),
        }
    }

    /// Renews forever: every `renew_interval`, and sooner with back-off after a failure.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.retry_initial, self.config.retry_max);
        loop {
            let delay = match self.renew().await {
                Ok(_) => {
                    backoff.reset();
                    self.config.renew_interval
                }
                Err(e) => {
                    tracing::warn!(error = %e, "failed to renew the node lease, will retry");
                    backoff.next_delay().min(self.config.renew_interval)
                }
            };
            tokio::time::sleep(delay).await;
        }
    }
}
