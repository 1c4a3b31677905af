//! Linux cgroup resources for containers and sandboxes (upstream kuberuntime
//! `calculateLinuxResources`, `generateLinuxContainerResources`, and pkg/kubelet/cm helpers).

use super::host;
use crate::qos::{self, RESOURCE_CPU, RESOURCE_MEMORY};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubelet_cri::api::{HugepageLimit, LinuxContainerResources};
use std::collections::{BTreeMap, HashMap};
use tracing::warn;

pub const CPU_PERIOD_US: i64 = 100_000;
const MIN_QUOTA_PERIOD_US: i64 = 1000;
pub const MIN_SHARES: i64 = 2;
pub const MAX_SHARES: i64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;

/// --cpu-cfs-quota and --cpu-cfs-quota-period: whether CPU limits become a CFS quota, and over
/// which period (microseconds). Containers and pod cgroups take their quota from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfsQuota {
    pub enforce: bool,
    pub period_us: i64,
}

impl Default for CfsQuota {
    fn default() -> Self {
        Self {
            enforce: true,
            period_us: CPU_PERIOD_US,
        }
    }
}

impl CfsQuota {
    /// The quota for a CPU limit; `None` when quotas are not enforced.
    pub fn quota(&self, limit_milli: i64) -> Option<i64> {
        self.enforce
            .then(|| milli_cpu_to_quota(limit_milli, self.period_us))
    }
}

/// `MilliCPUToShares`: 1024 shares per cpu, clamped to [2, 262144]; no request means 2.
pub fn milli_cpu_to_shares(milli: i64) -> i64 {
    if milli == 0 {
        return MIN_SHARES;
    }
    (milli * SHARES_PER_CPU / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// `milliCPUToQuota`: the CFS quota for a limit over one period, at least 1 ms; 0 = unlimited.
pub fn milli_cpu_to_quota(milli: i64, period: i64) -> i64 {
    if milli == 0 {
        return 0;
    }
    (milli * period / 1000).max(MIN_QUOTA_PERIOD_US)
}

/// `calculateLinuxResources`. A missing cpu request takes the limit (the API server does the
/// same for new pods; this covers older ones). Without quota enforcement, period and quota
/// stay unset, as upstream leaves them.
pub fn linux_resources(
    cpu_request_milli: Option<i64>,
    cpu_limit_milli: i64,
    memory_limit: i64,
    cfs: CfsQuota,
) -> LinuxContainerResources {
    let mut r = LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(cpu_request_milli.unwrap_or(cpu_limit_milli)),
        ..Default::default()
    };
    if let Some(quota) = cfs.quota(cpu_limit_milli) {
        r.cpu_period = cfs.period_us;
        r.cpu_quota = quota;
    }
    if memory_limit != 0 {
        r.memory_limit_in_bytes = memory_limit;
    }
    // Upstream's default singleProcessOOMKill=false on cgroup v2: an OOM kills the whole
    // container, not one process of it.
    if host::is_cgroup2_unified() {
        r.unified.insert("memory.oom.group".into(), "1".into());
    }
    r
}

pub(crate) fn amount(list: Option<&BTreeMap<String, Quantity>>, name: &str) -> Option<i64> {
    let q = list?.get(name)?;
    let parsed = if name == RESOURCE_CPU {
        kubelet_quantity::milli_value(&q.0)
    } else {
        kubelet_quantity::value(&q.0)
    };
    Some(parsed.unwrap_or_else(|e| {
        warn!(resource = name, error = %e, "ignoring an unparsable resource quantity");
        0
    }))
}

/// The container's resources: cpu and memory from its requests and limits, its OOM score,
/// huge page limits (0 for every host page size not asked for) and no swap.
pub fn container_resources(
    pod: &Pod,
    container: &Container,
    node_memory_capacity: u64,
    cfs: CfsQuota,
) -> LinuxContainerResources {
    let res = container.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let mut r = linux_resources(
        amount(requests, RESOURCE_CPU),
        amount(limits, RESOURCE_CPU).unwrap_or_default(),
        amount(limits, RESOURCE_MEMORY).unwrap_or_default(),
        cfs,
    );
    r.oom_score_adj = qos::oom_score_adj(pod, container, node_memory_capacity);
    r.hugepage_limits = hugepage_limits(limits, host::hugepage_sizes());
    if host::swap_controller_available() {
        // NoSwap, upstream's default swap behaviour: v1 caps memory+swap at the memory limit.
        if host::is_cgroup2_unified() {
            r.unified.insert("memory.swap.max".into(), "0".into());
        } else {
            r.memory_swap_limit_in_bytes = r.memory_limit_in_bytes;
        }
    }
    r
}

/// `GetHugepageLimitsFromResources`: one entry per host page size, the limit asked for by a
/// `hugepages-<size>` resource or 0.
fn hugepage_limits(
    limits: Option<&BTreeMap<String, Quantity>>,
    host_sizes: &[String],
) -> Vec<HugepageLimit> {
    let mut asked: HashMap<String, u64> = HashMap::new();
    for (name, q) in limits.into_iter().flatten() {
        let Some(size) = name.strip_prefix("hugepages-") else {
            continue;
        };
        let page = kubelet_quantity::value(size)
            .ok()
            .and_then(host::hugepage_unit_size);
        match (page, kubelet_quantity::value(&q.0)) {
            (Some(page), Ok(v)) => {
                asked.insert(page, u64::try_from(v).unwrap_or_default());
            }
            _ => warn!(resource = %name, "ignoring an unusable huge page limit"),
        }
    }
    host_sizes
        .iter()
        .map(|size| HugepageLimit {
            page_size: size.clone(),
            limit: asked.get(size).copied().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_quota_math() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(0, CPU_PERIOD_US), 0);
        assert_eq!(milli_cpu_to_quota(5, CPU_PERIOD_US), 1000);
        assert_eq!(milli_cpu_to_quota(250, CPU_PERIOD_US), 25_000);
        assert_eq!(milli_cpu_to_quota(2000, CPU_PERIOD_US), 200_000);
    }

    #[test]
    fn request_defaults_to_limit() {
        let r = linux_resources(None, 500, 64 << 20, CfsQuota::default());
        assert_eq!(
            (
                r.cpu_shares,
                r.cpu_quota,
                r.cpu_period,
                r.memory_limit_in_bytes
            ),
            (512, 50_000, 100_000, 64 << 20)
        );
        let r = linux_resources(Some(250), 0, 0, CfsQuota::default());
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (256, 0, 0)
        );
        assert_eq!(
            linux_resources(None, 0, 0, CfsQuota::default()).cpu_shares,
            2
        );
    }

    #[test]
    fn quota_follows_the_cfs_settings() {
        let short = CfsQuota {
            enforce: true,
            period_us: 10_000,
        };
        let r = linux_resources(None, 500, 0, short);
        assert_eq!((r.cpu_quota, r.cpu_period), (5_000, 10_000));
        let off = CfsQuota {
            enforce: false,
            period_us: CPU_PERIOD_US,
        };
        let r = linux_resources(None, 500, 0, off);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.cpu_period), (512, 0, 0));
        assert_eq!(off.quota(500), None);
        assert_eq!(CfsQuota::default().quota(0), Some(0));
    }

    #[test]
    fn hugepages_zero_unless_asked() {
        let sizes = vec!["1GB".to_owned(), "2MB".to_owned()];
        let limits = BTreeMap::from([("hugepages-2Mi".to_owned(), Quantity("4Mi".into()))]);
        let got = hugepage_limits(Some(&limits), &sizes);
        assert_eq!(
            got,
            vec![
                HugepageLimit {
                    page_size: "1GB".into(),
                    limit: 0
                },
                HugepageLimit {
                    page_size: "2MB".into(),
                    limit: 4 << 20
                },
            ]
        );
    }
}
