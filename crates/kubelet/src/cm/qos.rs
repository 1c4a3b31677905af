//! The QoS cgroups under kubepods (upstream qos_container_manager_linux.go): besteffort always
//! has the minimum 2 CPU shares; burstable has the shares of the sum of its pods' CPU
//! requests, rewritten as burstable pods come and go. Neither gets a memory limit (upstream
//! sets one only with qosReserved, which kubelet-rs does not implement).

use crate::admission::resources::{CPU, pod_requests};
use crate::cm::cgroup_manager::{CgroupError, CgroupManager};
use crate::cm::resource_config::ResourceConfig;
use k8s_openapi::api::core::v1::Pod;
use kubelet_kuberuntime::container_config::resources::{MIN_SHARES, milli_cpu_to_shares};
use kubelet_kuberuntime::qos::{QosClass, qos_class};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const BURSTABLE: &str = "burstable";
pub const BEST_EFFORT: &str = "besteffort";

/// The burstable tier's shares for its pods' CPU requests (millicores), at least the minimum.
pub fn burstable_shares(requests_milli: impl IntoIterator<Item = i64>) -> u64 {
    milli_cpu_to_shares(requests_milli.into_iter().sum()) as u64
}

#[derive(Debug)]
pub struct QosCgroups {
    manager: Arc<dyn CgroupManager>,
    /// The node allocatable cgroup, `<cgroup root>/kubepods`.
    kubepods: String,
    /// CPU requests of the burstable pods, by UID.
    burstable: Mutex<BTreeMap<String, i64>>,
}

impl QosCgroups {
    pub fn new(manager: Arc<dyn CgroupManager>, kubepods: String) -> Self {
        Self {
            manager,
            kubepods,
            burstable: Mutex::default(),
        }
    }

    pub fn tier(&self, tier: &str) -> String {
        format!("{}/{tier}", self.kubepods)
    }

    /// Creates both tiers with their shares.
    pub fn create(&self) -> Result<(), CgroupError> {
        let burstable = self.burstable.lock().unwrap();
        self.manager.create(
            &self.tier(BURSTABLE),
            &ResourceConfig {
                cpu_shares: Some(burstable_shares(burstable.values().copied())),
                ..Default::default()
            },
        )?;
        self.manager.create(
            &self.tier(BEST_EFFORT),
            &ResourceConfig {
                cpu_shares: Some(MIN_SHARES as u64),
                ..Default::default()
            },
        )
    }

    /// Counts a pod about to run; called before its pod cgroup is made, as upstream raises the
    /// tier's shares first.
    pub fn pod_added(&self, pod: &Pod) -> Result<(), CgroupError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut burstable = self.burstable.lock().unwrap();
        let changed = if qos_class(pod) == QosClass::Burstable {
            let request = pod_requests(pod).get(CPU).copied().unwrap_or(0);
            burstable.insert(uid, request) != Some(request)
        } else {
            burstable.remove(&uid).is_some()
        };
        if changed {
            self.write_burstable(&burstable)?;
        }
        Ok(())
    }

    /// Forgets a removed pod.
    pub fn pod_removed(&self, uid: &str) -> Result<(), CgroupError> {
        let mut burstable = self.burstable.lock().unwrap();
        if burstable.remove(uid).is_some() {
            self.write_burstable(&burstable)?;
        }
        Ok(())
    }

    fn write_burstable(&self, burstable: &BTreeMap<String, i64>) -> Result<(), CgroupError> {
        let shares = burstable_shares(burstable.values().copied());
        tracing::debug!(
            shares,
            pods = burstable.len(),
            "updating the burstable QoS cgroup"
        );
        self.manager.update(
            &self.tier(BURSTABLE),
            &ResourceConfig {
                cpu_shares: Some(shares),
                ..Default::default()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burstable_shares_sum_requests_with_a_minimum() {
        assert_eq!(burstable_shares([]), 2);
        assert_eq!(burstable_shares([1]), 2);
        assert_eq!(burstable_shares([100, 200]), 307);
        assert_eq!(burstable_shares([250, 250]), 512);
        assert_eq!(burstable_shares([1_000_000]), 262_144);
    }
}
