//! Feature gates (--feature-gates and featureGates): the gates kubelet-rs acts on, with
//! upstream v1.32's defaults. Any other gate is reported at start and changes nothing: the
//! kubelet then behaves as upstream does with that gate at its default.

use crate::units::parse_bool;
use crate::value::effective_map;

/// The gates kubelet-rs implements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeatureGates {
    /// MemoryQoS (alpha, off by default): on cgroup v2, memory.min from memory requests for
    /// containers, pods and the QoS cgroups, and memory.high to throttle containers before
    /// their limit (memoryThrottlingFactor).
    pub memory_qos: bool,
    /// CSIVolumeHealth (alpha, off by default): the volume condition of drivers that offer
    /// VOLUME_CONDITION in the volume stats and kubelet_volume_stats_health_status_abnormal.
    pub csi_volume_health: bool,
}

/// The gates given (file first, then flags; a later value of a gate wins), with a warning for
/// each gate kubelet-rs does not implement.
pub(crate) fn resolve(pairs: &[(String, String)], warnings: &mut Vec<String>) -> FeatureGates {
    let mut gates = FeatureGates::default();
    for (name, value) in effective_map(pairs) {
        // Both sources were checked to be booleans when they were read.
        let enabled = parse_bool(value).unwrap_or_default();
        match name {
            "MemoryQoS" => gates.memory_qos = enabled,
            "CSIVolumeHealth" => gates.csi_volume_health = enabled,
            other => warnings.push(format!(
                "feature gate {other}={enabled} is not implemented by kubelet-rs, ignoring it"
            )),
        }
    }
    gates
}
