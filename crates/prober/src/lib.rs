//! Container probes (upstream pkg/kubelet/prober and pkg/probe): liveness, readiness and startup
//! probes with the exec, httpGet, tcpSocket and grpc handlers.
//!
//! The kubelet tells the [`ProbeManager`] on every pod sync which containers run
//! ([`ProbeManager::sync_pod`]); the manager keeps one worker task per probed container and probe
//! type, so probes never block a sync. Results past their thresholds are stored, sent on the
//! update channel when they change, and read back through [`ProbeManager::readiness`],
//! [`ProbeManager::started`], [`ProbeManager::liveness_failed`] and
//! [`ProbeManager::startup_failed`]. When a liveness or startup failure makes the kubelet kill a
//! container, [`kill_grace_period`] gives the probe's own terminationGracePeriodSeconds.

pub mod events;
pub mod handlers;
pub mod lifecycle;
mod manager;
mod metrics;
mod prober;
mod spec;
mod state;
mod types;
mod worker;

#[cfg(test)]
mod tests;

pub use lifecycle::LifecycleHandlers;
pub use manager::ProbeManager;
pub use spec::kill_grace_period;
pub use types::{ContainerRun, ProbeResult, ProbeType, ProbeUpdate};
