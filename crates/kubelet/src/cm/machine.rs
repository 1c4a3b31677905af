//! What the machine has, for admission and resource math.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubelet_kuberuntime::qos::quantity;

/// CPU in millicores; an unparsable quantity counts as none (the source validated it).
pub fn milli_cpu(q: &Quantity) -> u64 {
    quantity::milli_value(q).map_or(0, |v| v.max(0) as u64)
}

/// Bytes; an unparsable quantity counts as none.
pub fn bytes(q: &Quantity) -> u64 {
    quantity::value(q).map_or(0, |v| v.max(0) as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineInfo {
    pub cpu_milli: u64,
    pub memory_bytes: u64,
}

impl MachineInfo {
    pub fn read() -> std::io::Result<Self> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo")?;
        let kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Self {
            cpu_milli: cpus * 1000,
            memory_bytes: kib * 1024,
        })
    }
}
