//! The QoS cgroups under kubepods (upstream qos_container_manager_linux.go): besteffort always
//! has the minimum 2 CPU shares; burstable has the shares of the sum of its pods' CPU
//! requests, rewritten as burstable pods come and go. Neither gets a memory limit (upstream
//! sets one only with qosReserved, which kubelet-rs does not implement). Under MemoryQoS the
//! memory requests are protected: burstable's memory.min is the sum of its pods' requests, and
//! kubepods' (the Guaranteed tier) that of the Guaranteed and Burstable pods together.

use crate::admission::resources::{CPU, MEMORY, pod_requests};
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

/// What a Guaranteed or Burstable pod asks of its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Demand {
    class: QosClass,
    cpu_milli: i64,
    memory: i64,
}

/// The tiers' values for the pods counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Totals {
    burstable_shares: u64,
    burstable_memory: u64,
    /// Guaranteed and Burstable together: kubepods must cover what its children protect.
    guaranteed_memory: u64,
}

fn totals(pods: &BTreeMap<String, Demand>) -> Totals {
    let memory = |of: &dyn Fn(QosClass) -> bool| -> u64 {
        pods.values()
            .filter(|d| of(d.class))
            .map(|d| u64::try_from(d.memory).unwrap_or(0))
            .sum()
    };
    Totals {
        burstable_shares: burstable_shares(
            pods.values()
                .filter(|d| d.class == QosClass::Burstable)
                .map(|d| d.cpu_milli),
        ),
        burstable_memory: memory(&|c| c == QosClass::Burstable),
        guaranteed_memory: memory(&|c| c != QosClass::BestEffort),
    }
}

#[derive(Debug)]
pub struct QosCgroups {
    manager: Arc<dyn CgroupManager>,
    /// The node allocatable cgroup, `<cgroup root>/kubepods`.
    kubepods: String,
    /// MemoryQoS on cgroup v2.
    memory_qos: bool,
    /// The Guaranteed and Burstable pods, by UID.
    pods: Mutex<BTreeMap<String, Demand>>,
}

impl QosCgroups {
    pub fn new(manager: Arc<dyn CgroupManager>, kubepods: String, memory_qos: bool) -> Self {
        Self {
            manager,
            kubepods,
            memory_qos,
            pods: Mutex::default(),
        }
    }

    pub fn tier(&self, tier: &str) -> String {
        format!("{}/{tier}", self.kubepods)
    }

    /// Creates both tiers with their values.
    pub fn create(&self) -> Result<(), CgroupError> {
        let t = totals(&self.pods.lock().unwrap());
        self.manager.create(
            &self.tier(BURSTABLE),
            &ResourceConfig {
                cpu_shares: Some(t.burstable_shares),
                memory_min: self.memory_qos.then_some(t.burstable_memory),
                ..Default::default()
            },
        )?;
        self.manager.create(
            &self.tier(BEST_EFFORT),
            &ResourceConfig {
                cpu_shares: Some(MIN_SHARES as u64),
                ..Default::default()
            },
        )?;
        self.write_guaranteed(t)
    }

    /// Counts a pod about to run; called before its pod cgroup is made, as upstream raises the
    /// tiers' values first.
    pub fn pod_added(&self, pod: &Pod) -> Result<(), CgroupError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let class = qos_class(pod);
        let mut pods = self.pods.lock().unwrap();
        let before = totals(&pods);
        if class == QosClass::BestEffort {
            pods.remove(&uid);
        } else {
            let requests = pod_requests(pod);
            let demand = Demand {
                class,
                cpu_milli: requests.get(CPU).copied().unwrap_or(0),
                memory: requests.get(MEMORY).copied().unwrap_or(0),
            };
            pods.insert(uid, demand);
        }
        self.write(before, totals(&pods))
    }

    /// Forgets a removed pod.
    pub fn pod_removed(&self, uid: &str) -> Result<(), CgroupError> {
        let mut pods = self.pods.lock().unwrap();
        let before = totals(&pods);
        pods.remove(uid);
        self.write(before, totals(&pods))
    }

    /// Rewrites the tiers whose values changed.
    fn write(&self, before: Totals, after: Totals) -> Result<(), CgroupError> {
        let burstable_changed = before.burstable_shares != after.burstable_shares
            || (self.memory_qos && before.burstable_memory != after.burstable_memory);
        if burstable_changed {
            tracing::debug!(
                shares = after.burstable_shares,
                memory_min = after.burstable_memory,
                "updating the burstable QoS cgroup"
            );
            self.manager.update(
                &self.tier(BURSTABLE),
                &ResourceConfig {
                    cpu_shares: Some(after.burstable_shares),
                    memory_min: self.memory_qos.then_some(after.burstable_memory),
                    ..Default::default()
                },
            )?;
        }
        if before.guaranteed_memory != after.guaranteed_memory {
            self.write_guaranteed(after)?;
        }
        Ok(())
    }

    /// kubepods' memory.min, under MemoryQoS.
    fn write_guaranteed(&self, t: Totals) -> Result<(), CgroupError> {
        if !self.memory_qos {
            return Ok(());
        }
        self.manager.update(
            &self.kubepods,
            &ResourceConfig {
                memory_min: Some(t.guaranteed_memory),
                ..Default::default()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cm::cgroup_manager::Cgroupfs;
    use kubelet_host::cgroupfs::Hierarchy;

    #[test]
    fn burstable_shares_sum_requests_with_a_minimum() {
        assert_eq!(burstable_shares([]), 2);
        assert_eq!(burstable_shares([1]), 2);
        assert_eq!(burstable_shares([100, 200]), 307);
        assert_eq!(burstable_shares([250, 250]), 512);
        assert_eq!(burstable_shares([1_000_000]), 262_144);
    }

    fn pod(uid: &str, resources: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"uid": uid, "name": uid},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}
        }))
        .unwrap()
    }

    #[test]
    fn memory_qos_protects_the_requests_of_each_tier_and_kubepods() {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path().to_path_buf();
        let manager = Arc::new(Cgroupfs::with_hierarchies(vec![Hierarchy {
            mount: mount.clone(),
            controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
            v2: true,
        }]));
        std::fs::create_dir_all(mount.join("kubepods")).unwrap();
        let qos = QosCgroups::new(manager, "/kubepods".into(), true);
        qos.create().unwrap();
        let read = |file: &str| std::fs::read_to_string(mount.join(file)).unwrap();
        assert_eq!(read("kubepods/burstable/memory.min"), "0");
        assert_eq!(read("kubepods/memory.min"), "0");
        assert_eq!(read("kubepods/besteffort/cpu.weight"), "1");
        assert!(!mount.join("kubepods/besteffort/memory.min").exists());

        let guaranteed = pod(
            "g",
            serde_json::json!({"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}),
        );
        let burstable = pod(
            "b",
            serde_json::json!({"requests": {"cpu": "500m", "memory": "32Mi"}}),
        );
        qos.pod_added(&guaranteed).unwrap();
        qos.pod_added(&burstable).unwrap();
        qos.pod_added(&pod("e", serde_json::json!({}))).unwrap();
        assert_eq!(
            read("kubepods/burstable/memory.min"),
            (32u64 << 20).to_string()
        );
        assert_eq!(read("kubepods/memory.min"), (96u64 << 20).to_string());
        assert_eq!(read("kubepods/burstable/cpu.weight"), "20");

        qos.pod_removed("b").unwrap();
        assert_eq!(read("kubepods/burstable/memory.min"), "0");
        assert_eq!(read("kubepods/memory.min"), (64u64 << 20).to_string());
        qos.pod_removed("g").unwrap();
        assert_eq!(read("kubepods/memory.min"), "0");
    }

    #[test]
    fn without_memory_qos_no_memory_min_is_written() {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path().to_path_buf();
        let manager = Arc::new(Cgroupfs::with_hierarchies(vec![Hierarchy {
            mount: mount.clone(),
            controllers: vec!["cpu".into(), "memory".into()],
            v2: true,
        }]));
        std::fs::create_dir_all(mount.join("kubepods")).unwrap();
        let qos = QosCgroups::new(manager, "/kubepods".into(), false);
        qos.create().unwrap();
        qos.pod_added(&pod(
            "b",
            serde_json::json!({"requests": {"memory": "32Mi"}}),
        ))
        .unwrap();
        assert!(!mount.join("kubepods/burstable/memory.min").exists());
        assert!(!mount.join("kubepods/memory.min").exists());
    }
}
