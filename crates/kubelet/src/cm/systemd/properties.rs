//! The unit properties of the kubelet's slices, as runc's systemd cgroup managers set them
//! (libcontainer/cgroups/systemd v1.go and v2.go): accounting on and a Wants= on the parent
//! slice at creation; the limits as CPUShares / CPUWeight, CPUQuotaPerSecUSec with
//! CPUQuotaPeriodUSec, MemoryLimit / MemoryMax and TasksMax, per cgroup version.

use crate::cm::resource_config::{ResourceConfig, shares_to_weight};
use kubelet_kuberuntime::container_config::resources::CPU_PERIOD_US;

/// One property value, in the D-Bus type systemd expects for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    Bool(bool),
    U64(u64),
    Str(String),
    Strs(Vec<String>),
}

pub type Properties = Vec<(&'static str, Prop)>;

/// systemd's "infinity" for u64 limits (USEC_INFINITY, CGROUP_LIMIT_MAX).
const INFINITY: u64 = u64::MAX;
/// The first systemd with CPUQuotaPeriodUSec.
const QUOTA_PERIOD_SINCE: u32 = 242;

/// What a new slice `unit` under `parent` is started with, its limits aside.
pub fn creation(unit: &str, parent: &str, unified: bool) -> Properties {
    let io_accounting = if unified {
        "IOAccounting"
    } else {
        "BlockIOAccounting"
    };
    vec![
        (
            "Description",
            Prop::Str(format!("libcontainer container {unit}")),
        ),
        // A slice's parent follows from its name; Wants= starts it first.
        ("Wants", Prop::Strs(vec![parent.to_string()])),
        ("MemoryAccounting", Prop::Bool(true)),
        ("CPUAccounting", Prop::Bool(true)),
        (io_accounting, Prop::Bool(true)),
        ("TasksAccounting", Prop::Bool(true)),
        ("DefaultDependencies", Prop::Bool(false)),
    ]
}

/// The limits of `config` as unit properties, for cgroup v2 (`unified`) or v1 and the given
/// systemd version.
pub fn limits(config: &ResourceConfig, unified: bool, systemd_version: u32) -> Properties {
    let mut out = Vec::new();
    if let Some(memory) = config.memory {
        let name = if unified { "MemoryMax" } else { "MemoryLimit" };
        out.push((name, Prop::U64(memory)));
    }
    if let Some(min) = config.memory_min.filter(|_| unified) {
        out.push(("MemoryMin", Prop::U64(min)));
    }
    if let Some(shares) = config.cpu_shares {
        out.push(if unified {
            ("CPUWeight", Prop::U64(shares_to_weight(shares)))
        } else {
            ("CPUShares", Prop::U64(shares))
        });
    }
    cpu_quota(&mut out, config, systemd_version);
    if let Some(pids) = config.pids {
        let max = u64::try_from(pids).unwrap_or(INFINITY);
        out.push(("TasksMax", Prop::U64(max)));
    }
    out
}

/// runc's addCpuQuota: systemd keeps the quota per second of CPU time in whole percents, so a
/// fraction rounds up to the next 10 ms (the exact value goes to the cgroup file afterwards).
fn cpu_quota(out: &mut Properties, config: &ResourceConfig, systemd_version: u32) {
    let period = config.cpu_period.filter(|&p| p > 0);
    let quota = config.cpu_quota.filter(|&q| q != 0);
    if let Some(period) = period
        && systemd_version >= QUOTA_PERIOD_SINCE
    {
        out.push(("CPUQuotaPeriodUSec", Prop::U64(period)));
    }
    if quota.is_none() && period.is_none() {
        return;
    }
    let per_sec = match quota {
        Some(quota) if quota > 0 => {
            let period = period.unwrap_or(CPU_PERIOD_US as u64);
            let per_sec = quota as u64 * 1_000_000 / period;
            per_sec.div_ceil(10_000) * 10_000
        }
        _ => INFINITY,
    };
    out.push(("CPUQuotaPerSecUSec", Prop::U64(per_sec)));
}

/// The leading number of systemd's Version property ("252.19-1~deb12u1" is 252); 0 when it
/// has none, which turns off what needs a known version.
pub fn major_version(version: &str) -> u32 {
    let digits: String = version
        .trim_start_matches('v')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guaranteed() -> ResourceConfig {
        ResourceConfig {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory: Some(64 << 20),
            memory_min: Some(32 << 20),
            pids: Some(100),
        }
    }

    #[test]
    fn v2_limits() {
        assert_eq!(
            limits(&guaranteed(), true, 252),
            vec![
                ("MemoryMax", Prop::U64(64 << 20)),
                ("MemoryMin", Prop::U64(32 << 20)),
                ("CPUWeight", Prop::U64(20)),
                ("CPUQuotaPeriodUSec", Prop::U64(100_000)),
                ("CPUQuotaPerSecUSec", Prop::U64(500_000)),
                ("TasksMax", Prop::U64(100)),
            ]
        );
    }

    #[test]
    fn v1_limits() {
        assert_eq!(
            limits(&guaranteed(), false, 252),
            vec![
                ("MemoryLimit", Prop::U64(64 << 20)),
                ("CPUShares", Prop::U64(512)),
                ("CPUQuotaPeriodUSec", Prop::U64(100_000)),
                ("CPUQuotaPerSecUSec", Prop::U64(500_000)),
                ("TasksMax", Prop::U64(100)),
            ]
        );
    }

    #[test]
    fn quota_rounds_up_and_old_systemd_gets_no_period() {
        let config = ResourceConfig {
            cpu_quota: Some(2_500),
            cpu_period: Some(50_000),
            ..Default::default()
        };
        assert_eq!(
            limits(&config, true, 241),
            vec![("CPUQuotaPerSecUSec", Prop::U64(50_000))]
        );
        let config = ResourceConfig {
            cpu_quota: Some(12_345),
            cpu_period: Some(100_000),
            ..Default::default()
        };
        assert_eq!(
            limits(&config, true, 252)[1],
            ("CPUQuotaPerSecUSec", Prop::U64(130_000))
        );
    }

    #[test]
    fn unlimited_values_are_infinity() {
        let config = ResourceConfig {
            cpu_quota: Some(-1),
            cpu_period: Some(100_000),
            pids: Some(-1),
            ..Default::default()
        };
        assert_eq!(
            limits(&config, true, 252),
            vec![
                ("CPUQuotaPeriodUSec", Prop::U64(100_000)),
                ("CPUQuotaPerSecUSec", Prop::U64(u64::MAX)),
                ("TasksMax", Prop::U64(u64::MAX)),
            ]
        );
        assert!(limits(&ResourceConfig::default(), true, 252).is_empty());
    }

    #[test]
    fn creation_per_version() {
        let v2 = creation("kubepods.slice", "-.slice", true);
        assert!(v2.contains(&("IOAccounting", Prop::Bool(true))));
        assert!(v2.contains(&("Wants", Prop::Strs(vec!["-.slice".into()]))));
        assert!(v2.contains(&("DefaultDependencies", Prop::Bool(false))));
        let v1 = creation("kubepods.slice", "-.slice", false);
        assert!(v1.contains(&("BlockIOAccounting", Prop::Bool(true))));
        assert!(!v1.iter().any(|(name, _)| *name == "IOAccounting"));
    }

    #[test]
    fn versions() {
        assert_eq!(major_version("252.19-1~deb12u1"), 252);
        assert_eq!(major_version("v239"), 239);
        assert_eq!(major_version("unknown"), 0);
    }
}
