//! The kubelet's observability data: its own Prometheus metrics (/metrics), the stats Summary
//! (/stats/summary) and the metrics derived from it (/metrics/resource, /metrics/cadvisor).

pub mod error;
pub mod host;
pub mod kubelet_metrics;
mod process;
pub mod provider;
pub mod types;

pub use error::StatsError;
pub use kubelet_metrics::{BuildInfo, KubeletMetrics};
pub use provider::{StatsConfig, StatsProvider};
pub use types::Summary;

#[cfg(test)]
mod tests;
