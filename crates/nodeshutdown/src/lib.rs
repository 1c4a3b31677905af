//! Graceful node shutdown (upstream pkg/kubelet/nodeshutdown and its systemd/ inhibitor code):
//! a delay inhibitor lock on systemd-logind over the system D-Bus, the PrepareForShutdown signal,
//! and the order and grace periods in which pods are stopped before the node goes down.

mod budget;
mod config;
mod error;
mod groups;
mod inhibit_delay;
mod logind;
mod termination;
mod watcher;

pub use budget::ShutdownBudget;
pub use config::{DEFAULT_LOGIND_CONF_DIR, DEFAULT_SYSTEM_BUS_ADDRESS, ShutdownConfig};
pub use error::ShutdownError;
pub use groups::{
    SYSTEM_CRITICAL_PRIORITY, ShutdownGroups, effective_priority, pod_grace_period, shutdown_groups,
};
pub use inhibit_delay::KUBELET_LOGIND_CONF;
pub use termination::{
    DISRUPTION_TARGET_CONDITION, DISRUPTION_TARGET_REASON, NODE_SHUTDOWN_MESSAGE,
    NODE_SHUTDOWN_NOT_ADMITTED_MESSAGE, NODE_SHUTDOWN_NOT_ADMITTED_REASON, NODE_SHUTDOWN_REASON,
};
pub use watcher::ShutdownWatcher;
