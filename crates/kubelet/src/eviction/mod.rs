//! Eviction (upstream pkg/kubelet/eviction): signals measured every period and compared with
//! the hard and soft thresholds; the pressure conditions published for the node status and
//! for admission; node-level resources reclaimed for disk pressure; then one pod at a time
//! ranked, evicted and reported Failed with reason Evicted.

mod admission;
mod manager;
mod message;
mod metrics;
mod notifier;
mod ranking;
mod readiness;
mod signals;
mod thresholds;

pub use admission::{admit, is_critical};
pub use manager::{Deps, EvictionManager, MONITORING_PERIOD};
pub use message::REASON;
pub use metrics::EvictionMetrics;
pub(crate) use signals::{filesystem, image_fs_mountpoint};
