//! Event reasons the prober records (upstream pkg/kubelet/events).

pub const UNHEALTHY: &str = "Unhealthy";
pub const PROBE_WARNING: &str = "ProbeWarning";
