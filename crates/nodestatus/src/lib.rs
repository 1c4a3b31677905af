//! The node's presence in the cluster: registration of the Node object, its status computed
//! and posted as upstream's kubelet does, and the Lease heartbeat in kube-node-lease.
//! Upstream: pkg/kubelet/nodestatus, pkg/kubelet/nodelease, kubelet_node_status.go.
//!
//! Wiring, in the order the kubelet starts:
//! 1. [`client_from_kubeconfig`] with --kubeconfig and [`ApiRateLimit`] from
//!    --kube-api-qps/--kube-api-burst ([`wire_content_type`] answers --kube-api-content-type);
//! 2. [`MachineFacts::read`] on the root dir, a [`NodeInfoSource`] from the flags
//!    ([`default_hostname`], [`detect_node_ip`] when --hostname-override or --node-ip are unset);
//! 3. [`record_starting_event`], then [`register_node_until_success`] when --register-node;
//! 4. spawn [`NodeStatusLoop::run`], fed [`PressureInputs`] through a `tokio::sync::watch`
//!    channel, and [`LeaseLoop::run`]; both retry on their own while the API server is away.

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

pub use client::{
    client_from_kubeconfig, client_from_kubeconfig_with_certificate, wire_content_type,
};
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
pub use status_loop::{ExtendedResources, NodeStatusConfig, NodeStatusLoop, VolumesInUse};
