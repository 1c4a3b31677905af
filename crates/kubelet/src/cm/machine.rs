//! What the machine has, for admission and resource math.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU in millicores; an unparsable quantity counts as none (the source validated it).
pub fn milli_cpu(q: &Quantity) -> u64 {
    kubelet_quantity::milli_value(&q.0).map_or(0, |v| v.max(0) as u64)
}

/// Bytes; an unparsable quantity counts as none.
pub fn bytes(q: &Quantity) -> u64 {
    kubelet_quantity::value(&q.0).map_or(0, |v| v.max(0) as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineInfo {
    pub cpu_milli: u64,
    pub memory_bytes: u64,
}

impl MachineInfo {
    pub fn read() -> Result<Self, kubelet_host::HostError> {
        Ok(Self {
            cpu_milli: kubelet_host::machine::online_cpus()? * 1000,
            memory_bytes: kubelet_host::machine::memory_bytes()?,
        })
    }
}
