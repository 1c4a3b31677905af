//! The prober's vocabulary: probe kinds, results, updates and what it knows of a container.

use std::fmt;
use tokio::time::Instant;

/// Which of a container's three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeType {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeType {
    pub const ALL: [ProbeType; 3] = [
        ProbeType::Liveness,
        ProbeType::Readiness,
        ProbeType::Startup,
    ];

    /// Upstream's spelling, used in event messages and the metric's `probe_type` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeType::Liveness => "Liveness",
            ProbeType::Readiness => "Readiness",
            ProbeType::Startup => "Startup",
        }
    }
}

impl fmt::Display for ProbeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one probe (upstream pkg/probe `Result`). A handler's `Warning` (an HTTP redirect
/// to another host) counts as `Success` once recorded, so updates and stored results only carry
/// `Success` or `Failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeResult {
    Success,
    Warning,
    Failure,
}

/// A stored result changed: sent on the manager's update channel, as upstream's results
/// managers do, so the kubelet can sync the pod (liveness or startup failure) or its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUpdate {
    pub pod_uid: String,
    pub container_name: String,
    pub container_id: String,
    pub probe: ProbeType,
    pub result: ProbeResult,
}

/// What the prober needs to know of a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRun {
    pub name: String,
    /// The CRI container id.
    pub id: String,
    /// When the container started: initialDelaySeconds counts from here.
    pub started_at: Instant,
    pub restart_count: u32,
}
