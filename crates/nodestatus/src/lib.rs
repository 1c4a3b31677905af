//! The node's presence in the cluster: registration of the Node object, its status computed
//! and posted as upstream's kubelet does, and the Lease heartbeat in kube-node-lease.
//! Upstream: pkg/kubelet/nodestatus, pkg/kubelet/nodelease, kubelet_node_status.go.

mod backoff;
mod client;
mod conditions;
mod error;
mod events;
mod info;
mod lease;
mod machine;
mod node_address;
pub mod quantity;
mod rate_limit;
mod registration;
mod resources;
mod status;
mod status_loop;

pub use client::client_from_kubeconfig;
pub use error::NodeStatusError;
pub use events::{NodeEvent, record_node_event, record_starting_event, status_events};
pub use info::{
    HardEviction, KUBELET_VERSION, NodeInfoSource, PressureInputs, Reserved, Threshold,
};
pub use lease::{LeaseConfig, LeaseLoop};
pub use machine::MachineFacts;
pub use node_address::{default_hostname, detect_node_ip};
pub use rate_limit::{ApiRateLimit, RateLimit, RateLimitLayer};
pub use registration::{initial_node, register_node, register_node_until_success};
pub use status::{go_arch, node_status, status_changed};
pub use status_loop::{NodeStatusConfig, NodeStatusLoop};
