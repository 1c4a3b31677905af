//! The CPU manager's settings (cpuManagerPolicy, cpuManagerPolicyOptions,
//! cpuManagerReconcilePeriod, reservedSystemCPUs), and the memory and topology manager
//! policies, which kubelet-rs only has in their default form.

use crate::error::ConfigError;
use crate::settings::Settings;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuManagerPolicy {
    None,
    Static,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuManagerConfig {
    pub policy: CpuManagerPolicy,
    /// Checked when the CPU manager starts, as upstream checks them.
    pub policy_options: BTreeMap<String, String>,
    pub reconcile_period: Duration,
    /// --reserved-cpus as given (a CPU list); empty reserves a count taken from kubeReserved
    /// and systemReserved instead.
    pub reserved_cpus: String,
}

pub(crate) fn cpu_manager(s: &Settings) -> Result<CpuManagerConfig, ConfigError> {
    let invalid = |setting: &str, reason: String| ConfigError::Invalid {
        setting: setting.into(),
        reason,
    };
    let policy = match s.cpu_manager_policy.as_str() {
        "none" => CpuManagerPolicy::None,
        "static" => CpuManagerPolicy::Static,
        other => {
            return Err(invalid(
                "cpuManagerPolicy (--cpu-manager-policy)",
                format!("unknown policy: {other:?}"),
            ));
        }
    };
    if s.memory_manager_policy != "None" {
        return Err(invalid(
            "memoryManagerPolicy (--memory-manager-policy)",
            format!(
                "{:?}: kubelet-rs has no memory manager; only the default \"None\" is supported",
                s.memory_manager_policy
            ),
        ));
    }
    if s.topology_manager_policy != "none" {
        return Err(invalid(
            "topologyManagerPolicy (--topology-manager-policy)",
            format!(
                "{:?}: kubelet-rs has no topology manager; only the default \"none\" is supported",
                s.topology_manager_policy
            ),
        ));
    }
    if s.cpu_manager_reconcile_period.is_zero() && policy == CpuManagerPolicy::Static {
        return Err(invalid(
            "cpuManagerReconcilePeriod (--cpu-manager-reconcile-period)",
            "must be greater than zero".into(),
        ));
    }
    Ok(CpuManagerConfig {
        policy,
        policy_options: s.cpu_manager_policy_options.iter().cloned().collect(),
        reconcile_period: s.cpu_manager_reconcile_period,
        reserved_cpus: s.reserved_system_cpus.trim().to_string(),
    })
}
