//! The kubelet's observability data: its own Prometheus metrics (/metrics), the stats Summary
//! (/stats/summary) and the metrics derived from it (/metrics/resource, /metrics/cadvisor).

mod cadvisor;
pub mod error;
pub mod exposition;
pub mod host;
pub mod kubelet_metrics;
mod process;
pub mod provider;
mod resource_metrics;
pub mod types;

pub use error::StatsError;
pub use kubelet_metrics::{BuildInfo, KubeletMetrics};
pub use provider::{StatsConfig, StatsProvider};
pub use resource_metrics::resource_metrics;
pub use types::Summary;

#[cfg(test)]
mod tests;
