//! Pod cgroups (upstream pod_container_manager_linux.go): <root>/kubepods[/burstable|/besteffort]
//! /pod<uid>, with the pod-level limits, made before the sandbox. A removed pod's cgroup goes
//! once its containers have: processes still in it are killed first, then it is removed from
//! every hierarchy (runc removes only the container leaves). The QoS tiers and the kubepods
//! cgroup above them are set up at start.

use crate::admission::resources::{CPU, MEMORY, pod_requests};
use crate::cm::cgroup_manager::{CgroupError, CgroupManager, Cgroupfs};
use crate::cm::machine::{bytes, milli_cpu};
use crate::cm::node_allocatable::{Amounts, NodeAllocatable};
use crate::cm::qos::{BEST_EFFORT, BURSTABLE, QosCgroups};
use crate::cm::resource_config::ResourceConfig;
use crate::cm::systemd::Systemd;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubelet_kuberuntime::container_config::resources::{CfsQuota, MIN_SHARES, milli_cpu_to_shares};
use kubelet_kuberuntime::qos::{self, CgroupDriver, QosClass};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How pod cgroups are laid out and limited.
#[derive(Debug, Clone)]
pub struct PodCgroupSettings {
    /// --cgroup-root.
    pub cgroup_root: String,
    /// --cgroups-per-qos: without it, pods get no cgroups of their own.
    pub per_qos: bool,
    /// --pod-max-pids (podPidsLimit); 0 or less is no limit.
    pub pod_pids_limit: i64,
    pub cfs: CfsQuota,
    /// MemoryQoS on cgroup v2: memory.min from memory requests.
    pub memory_qos: bool,
}

/// The node's pod cgroups, through a cgroup driver.
#[derive(Debug, Clone)]
pub struct PodCgroups {
    manager: Arc<dyn CgroupManager>,
    settings: PodCgroupSettings,
    qos: Arc<QosCgroups>,
}

/// Upstream ResourceConfigForPod: shares from the pod's CPU request; quota (or -1 without
/// --cpu-cfs-quota) and memory limit only when every container has that limit; the pids
/// limit on every pod; under MemoryQoS, memory.min from the pod's memory request.
pub fn pod_config(pod: &Pod, settings: &PodCgroupSettings) -> ResourceConfig {
    let pids = (settings.pod_pids_limit > 0).then_some(settings.pod_pids_limit);
    if qos::qos_class(pod) == QosClass::BestEffort {
        return ResourceConfig {
            cpu_shares: Some(MIN_SHARES as u64),
            pids,
            ..Default::default()
        };
    }
    let requests = pod_requests(pod);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let limit = |name: &str, value: fn(&Quantity) -> u64| -> Option<u64> {
        containers.iter().try_fold(0u64, |sum, c| {
            let q = c.resources.as_ref()?.limits.as_ref()?.get(name)?;
            Some(sum + value(q))
        })
    };
    let cpu_limit = limit("cpu", milli_cpu).filter(|&m| m > 0);
    let request = requests.get(CPU).copied().unwrap_or(0);
    let memory_min = requests
        .get(MEMORY)
        .and_then(|&m| u64::try_from(m).ok())
        .filter(|&m| settings.memory_qos && m > 0);
    let cfs = settings.cfs;
    ResourceConfig {
        cpu_shares: Some(milli_cpu_to_shares(request) as u64),
        cpu_quota: cpu_limit.map(|m| cfs.quota(m as i64).unwrap_or(-1)),
        cpu_period: cpu_limit.map(|_| cfs.period_us as u64),
        memory: limit("memory", bytes).filter(|&m| m > 0),
        memory_min,
        pids,
    }
}

impl PodCgroups {
    /// The driver's cgroups over the host's hierarchies; nothing is created until
    /// [`Self::start`].
    pub fn new(settings: PodCgroupSettings, driver: CgroupDriver) -> Result<Self, CgroupError> {
        let manager: Arc<dyn CgroupManager> = match driver {
            CgroupDriver::Cgroupfs => Arc::new(Cgroupfs::new()?),
            CgroupDriver::Systemd => Arc::new(Systemd::new()?),
        };
        Ok(Self::with_manager(manager, settings))
    }

    pub fn with_manager(manager: Arc<dyn CgroupManager>, settings: PodCgroupSettings) -> Self {
        let kubepods = format!("{}/kubepods", settings.cgroup_root.trim_end_matches('/'));
        Self {
            qos: Arc::new(QosCgroups::new(
                manager.clone(),
                kubepods,
                settings.memory_qos,
            )),
            manager,
            settings,
        }
    }

    /// Pod cgroups on a node whose cgroups the kubelet does not manage: nothing is created or
    /// removed. Unit tests run the kubelet this way against the fake runtime.
    pub fn unmanaged(cgroup_root: &str) -> Self {
        Self::with_manager(
            Arc::new(Cgroupfs::with_hierarchies(Vec::new())),
            PodCgroupSettings {
                cgroup_root: cgroup_root.into(),
                per_qos: true,
                pod_pids_limit: 0,
                cfs: CfsQuota::default(),
                memory_qos: false,
            },
        )
    }

    fn kubepods(&self) -> String {
        format!(
            "{}/kubepods",
            self.settings.cgroup_root.trim_end_matches('/')
        )
    }

    /// At start: the kubepods cgroup limited as node allocatable says, the reserved cgroups
    /// enforced, and the QoS tiers below kubepods.
    pub fn start(
        &self,
        allocatable: &NodeAllocatable,
        capacity: Amounts,
    ) -> Result<(), CgroupError> {
        if !self.settings.per_qos {
            return Ok(());
        }
        allocatable.enforce(self.manager.as_ref(), &self.kubepods(), capacity)?;
        self.qos.create()
    }

    /// The pod's cgroup name (its path under the cgroupfs driver).
    pub fn pod_path(&self, pod: &Pod) -> String {
        qos::pod_cgroup_parent(pod, &self.settings.cgroup_root, self.settings.per_qos)
    }

    /// Creates the pod cgroup with its limits, once: a pod's resources are fixed for its UID.
    pub fn ensure(&self, pod: &Pod) -> Result<(), CgroupError> {
        if !self.settings.per_qos {
            return Ok(());
        }
        self.qos.pod_added(pod)?;
        let name = self.pod_path(pod);
        if self.manager.exists(&name) {
            return Ok(());
        }
        let config = pod_config(pod, &self.settings);
        tracing::debug!(pod_uid = pod.metadata.uid.as_deref().unwrap_or_default(), cgroup = %name, ?config, "creating the pod cgroup");
        self.manager.create(&name, &config)
    }

    /// Removes the pod cgroup of `pod_uid`, whichever QoS tier it is in, killing what is left
    /// in it first.
    pub fn remove(&self, pod_uid: &str) -> Result<(), CgroupError> {
        if !self.settings.per_qos {
            return Ok(());
        }
        for parent in self.pod_parents() {
            self.manager.destroy(&format!("{parent}/pod{pod_uid}"))?;
        }
        self.qos.pod_removed(pod_uid)
    }

    fn pod_parents(&self) -> [String; 3] {
        let kubepods = self.kubepods();
        [
            self.qos.tier(BURSTABLE),
            self.qos.tier(BEST_EFFORT),
            kubepods,
        ]
    }

    /// Every pod cgroup on the node, by pod UID with its cgroup name: what housekeeping scans
    /// for pods the kubelet no longer knows (after a restart, say).
    pub fn pod_dirs(&self) -> Vec<(String, String)> {
        let mut out = BTreeMap::new();
        if !self.settings.per_qos {
            return Vec::new();
        }
        for parent in self.pod_parents() {
            for child in self.manager.children(&parent) {
                if let Some(uid) = child.strip_prefix("pod") {
                    out.insert(uid.to_string(), format!("{parent}/{child}"));
                }
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(resources: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u1", "name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}
        }))
        .unwrap()
    }

    fn settings(pids: i64, cfs: CfsQuota) -> PodCgroupSettings {
        PodCgroupSettings {
            cgroup_root: "/".into(),
            per_qos: true,
            pod_pids_limit: pids,
            cfs,
            memory_qos: false,
        }
    }

    #[test]
    fn limits_follow_qos() {
        let s = settings(0, CfsQuota::default());
        assert_eq!(
            pod_config(&pod(serde_json::json!({})), &s),
            ResourceConfig {
                cpu_shares: Some(2),
                ..Default::default()
            }
        );
        let burstable = pod(serde_json::json!({"requests": {"cpu": "250m"}}));
        assert_eq!(
            pod_config(&burstable, &s),
            ResourceConfig {
                cpu_shares: Some(256),
                ..Default::default()
            }
        );
        let guaranteed = pod(
            serde_json::json!({"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}),
        );
        assert_eq!(
            pod_config(&guaranteed, &s),
            ResourceConfig {
                cpu_shares: Some(1024),
                cpu_quota: Some(100_000),
                cpu_period: Some(100_000),
                memory: Some(64 << 20),
                memory_min: None,
                pids: None,
            }
        );
    }

    #[test]
    fn memory_qos_protects_the_pods_memory_request() {
        let s = PodCgroupSettings {
            memory_qos: true,
            ..settings(0, CfsQuota::default())
        };
        // Init containers count by their largest, as for scheduling.
        let burstable: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u1", "name": "p"},
            "spec": {
                "initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"memory": "100Mi"}}}],
                "containers": [
                    {"name": "a", "image": "i", "resources": {"requests": {"memory": "32Mi"}}},
                    {"name": "b", "image": "i", "resources": {"requests": {"memory": "16Mi"}, "limits": {"memory": "64Mi"}}}
                ]
            }
        }))
        .unwrap();
        let config = pod_config(&burstable, &s);
        assert_eq!(config.memory_min, Some(100 << 20));
        assert_eq!(config.memory, None, "a container has no memory limit");
        let cpu_only = pod(serde_json::json!({"requests": {"cpu": "100m"}}));
        assert_eq!(pod_config(&cpu_only, &s).memory_min, None);
        assert_eq!(
            pod_config(&pod(serde_json::json!({})), &s).memory_min,
            None,
            "BestEffort"
        );
        let off = settings(0, CfsQuota::default());
        assert_eq!(pod_config(&burstable, &off).memory_min, None);
    }

    #[test]
    fn quota_follows_period_and_enforcement_and_pids_apply_to_all() {
        let limited = pod(serde_json::json!({"limits": {"cpu": "500m"}}));
        let short = settings(
            100,
            CfsQuota {
                enforce: true,
                period_us: 50_000,
            },
        );
        let config = pod_config(&limited, &short);
        assert_eq!(
            (config.cpu_quota, config.cpu_period, config.pids),
            (Some(25_000), Some(50_000), Some(100))
        );
        let off = settings(
            0,
            CfsQuota {
                enforce: false,
                period_us: 100_000,
            },
        );
        assert_eq!(pod_config(&limited, &off).cpu_quota, Some(-1));
        assert_eq!(
            pod_config(&pod(serde_json::json!({})), &short).pids,
            Some(100)
        );
    }
}
