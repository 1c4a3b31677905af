//! The resources a cgroup is given (upstream cm.ResourceConfig) and the interface files that
//! carry them on each cgroup version: v1's cpu.shares, cpu.cfs_quota_us, memory.limit_in_bytes,
//! pids.max, or v2's cpu.weight, cpu.max, memory.max, memory.min (MemoryQoS, v2 only),
//! pids.max.

use kubelet_kuberuntime::container_config::resources::{MAX_SHARES, MIN_SHARES};

/// One value for one interface file, with the controller that owns the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFile {
    pub controller: &'static str,
    pub name: &'static str,
    pub value: String,
}

/// What a cgroup is limited to; `None` leaves a value as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceConfig {
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period; -1 is no quota.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    pub memory: Option<u64>,
    /// Memory never reclaimed from the cgroup (v2 memory.min); set by MemoryQoS only.
    pub memory_min: Option<u64>,
    /// Maximum number of processes; -1 is no limit.
    pub pids: Option<i64>,
}

fn file(controller: &'static str, name: &'static str, value: String) -> CgroupFile {
    CgroupFile {
        controller,
        name,
        value,
    }
}

/// "max" for the unlimited -1 of v2's files.
fn v2_limit(value: i64) -> String {
    if value < 0 {
        "max".into()
    } else {
        value.to_string()
    }
}

/// Upstream CpuSharesToCpuWeight: v1's [2, 262144] shares mapped onto v2's [1, 10000] weight.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES as u64, MAX_SHARES as u64);
    1 + ((shares - MIN_SHARES as u64) * 9999) / (MAX_SHARES as u64 - MIN_SHARES as u64)
}

impl ResourceConfig {
    /// The v1 files, each in its controller's hierarchy. The period goes before the quota: the
    /// kernel checks a new quota against the current period.
    pub fn v1_files(&self) -> Vec<CgroupFile> {
        let mut out = Vec::new();
        if let Some(shares) = self.cpu_shares {
            out.push(file("cpu", "cpu.shares", shares.to_string()));
        }
        if let Some(period) = self.cpu_period {
            out.push(file("cpu", "cpu.cfs_period_us", period.to_string()));
        }
        if let Some(quota) = self.cpu_quota {
            out.push(file("cpu", "cpu.cfs_quota_us", quota.to_string()));
        }
        if let Some(memory) = self.memory {
            out.push(file("memory", "memory.limit_in_bytes", memory.to_string()));
        }
        if let Some(pids) = self.pids {
            out.push(file("pids", "pids.max", v2_limit(pids)));
        }
        out
    }

    /// The v2 files of the unified hierarchy; cpu.max holds quota and period together.
    pub fn v2_files(&self) -> Vec<CgroupFile> {
        let mut out = Vec::new();
        if let Some(shares) = self.cpu_shares {
            out.push(file(
                "cpu",
                "cpu.weight",
                shares_to_weight(shares).to_string(),
            ));
        }
        if self.cpu_quota.is_some() || self.cpu_period.is_some() {
            let period = self
                .cpu_period
                .unwrap_or(kubelet_kuberuntime::container_config::resources::CPU_PERIOD_US as u64);
            let quota = v2_limit(self.cpu_quota.unwrap_or(-1));
            out.push(file("cpu", "cpu.max", format!("{quota} {period}")));
        }
        if let Some(memory) = self.memory {
            out.push(file("memory", "memory.max", memory.to_string()));
        }
        if let Some(min) = self.memory_min {
            out.push(file("memory", "memory.min", min.to_string()));
        }
        if let Some(pids) = self.pids {
            out.push(file("pids", "pids.max", v2_limit(pids)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_and_values(files: Vec<CgroupFile>) -> Vec<(&'static str, String)> {
        files.into_iter().map(|f| (f.name, f.value)).collect()
    }

    #[test]
    fn weight_from_shares_matches_upstream() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
    }

    /// memory.min is MemoryQoS's, which upstream applies on v2 only: v1 has no such file.
    #[test]
    fn v1_and_v2_files_carry_the_same_limits() {
        let config = ResourceConfig {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory: Some(64 << 20),
            memory_min: Some(32 << 20),
            pids: Some(100),
        };
        assert_eq!(
            names_and_values(config.v1_files()),
            vec![
                ("cpu.shares", "512".to_string()),
                ("cpu.cfs_period_us", "100000".to_string()),
                ("cpu.cfs_quota_us", "50000".to_string()),
                ("memory.limit_in_bytes", (64u64 << 20).to_string()),
                ("pids.max", "100".to_string()),
            ]
        );
        assert_eq!(
            names_and_values(config.v2_files()),
            vec![
                ("cpu.weight", "20".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("memory.max", (64u64 << 20).to_string()),
                ("memory.min", (32u64 << 20).to_string()),
                ("pids.max", "100".to_string()),
            ]
        );
    }

    #[test]
    fn unlimited_values() {
        let config = ResourceConfig {
            cpu_quota: Some(-1),
            pids: Some(-1),
            ..Default::default()
        };
        assert_eq!(
            names_and_values(config.v1_files()),
            vec![
                ("cpu.cfs_quota_us", "-1".to_string()),
                ("pids.max", "max".to_string())
            ]
        );
        assert_eq!(
            names_and_values(config.v2_files()),
            vec![
                ("cpu.max", "max 100000".to_string()),
                ("pids.max", "max".to_string())
            ]
        );
        assert!(ResourceConfig::default().v1_files().is_empty());
    }
}
