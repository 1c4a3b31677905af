//! The raw figures of one session (one subject, one round), as written to JSON.

use crate::proc_sampler::SteadyPoint;
use serde::Serialize;
use std::collections::BTreeMap;

/// The floor's subject name in tables and JSON.
pub const FLOOR: &str = "floor";

#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionResult {
    /// "floor", or the kubelet's label ("A", "B", ...).
    pub subject: String,
    /// The runtime it ran on: "containerd" or "builtin".
    pub runtime: String,
    pub round: usize,
    /// Single-pod start latencies, one per repeat.
    pub single_ms: Vec<f64>,
    pub burst: Option<Burst>,
    pub reaction: Vec<Reaction>,
    pub steady: Vec<SteadyPoint>,
    /// From the old pods' removal to the runtime holding exactly the new set.
    pub churn_ms: Option<f64>,
    /// The floor's single-pod starts and removals, call by call: each CRI call's duration as
    /// the bench's client saw it, by call name.
    pub calls_ms: BTreeMap<String, Vec<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Burst {
    pub pods: usize,
    /// Each pod's start latency, from its own manifest write (or creation request).
    pub latencies_ms: Vec<f64>,
    /// From the first write to the last pod running.
    pub last_pod_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reaction {
    /// From the kill to a new container of the pod running (seen through CRI).
    pub restart_ms: f64,
    /// From the kill to the kubelet's /pods showing the exit; `None` when it has no /pods.
    pub reported_ms: Option<f64>,
}
