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

/// MemoryQoS (upstream's alpha feature gate); the kubelet gives it only on cgroup v2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryQos {
    /// memoryThrottlingFactor: where memory.high sits between the request and the limit.
    pub throttling_factor: f64,
    /// Node allocatable memory (capacity less kube- and system-reserved): the ceiling of a
    /// container without a memory limit.
    pub node_allocatable_memory: i64,
}

/// The page size memory.high is rounded down to, as upstream takes it.
const PAGE_SIZE: i64 = 4096;

impl MemoryQos {
    /// The container's memory.min (its request) and memory.high, as upstream's
    /// generateLinuxContainerResources sets them: no memory.high when the request equals the
    /// limit (the pod asks for no overcommit; also when neither is set, as in v1.32), nor when
    /// it would not exceed the request.
    pub fn files(&self, request: i64, limit: i64) -> Vec<(&'static str, String)> {
        let mut files = Vec::new();
        if request != 0 {
            files.push(("memory.min", request.to_string()));
        }
        if request != limit {
            let ceiling = if limit != 0 {
                limit
            } else {
                self.node_allocatable_memory
            };
            if ceiling > 0 {
                let high = (request as f64 + (ceiling - request) as f64 * self.throttling_factor)
                    / PAGE_SIZE as f64;
                let high = high.floor() as i64 * PAGE_SIZE;
                if high > request {
                    files.push(("memory.high", high.to_string()));
                }
            }
        }
        files
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
    memory_qos: Option<MemoryQos>,
) -> LinuxContainerResources {
    let res = container.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let memory_limit = amount(limits, RESOURCE_MEMORY).unwrap_or_default();
    let mut r = linux_resources(
        amount(requests, RESOURCE_CPU),
        amount(limits, RESOURCE_CPU).unwrap_or_default(),
        memory_limit,
        cfs,
    );
    if let Some(qos) = memory_qos {
        let request = amount(requests, RESOURCE_MEMORY).unwrap_or_default();
        for (file, value) in qos.files(request, memory_limit) {
            r.unified.insert(file.into(), value);
        }
    }
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

    const MI: i64 = 1 << 20;

    fn high(files: &[(&str, String)]) -> Option<i64> {
        files
            .iter()
            .find(|(f, _)| *f == "memory.high")
            .map(|(_, v)| v.parse().unwrap())
    }

    #[test]
    fn memory_qos_follows_upstreams_formula() {
        let qos = MemoryQos {
            throttling_factor: 0.9,
            node_allocatable_memory: 2000 * MI,
        };
        // The KEP's table: limit 1000Mi, factor 0.9.
        for (request, expected) in [(0, 900), (100, 910), (500, 950), (900, 990)] {
            let files = qos.files(request * MI, 1000 * MI);
            assert_eq!(high(&files), Some(expected * MI), "request {request}Mi");
            assert_eq!(
                files.iter().any(|(f, _)| *f == "memory.min"),
                request != 0,
                "memory.min only for a request"
            );
        }
        // No limit: node allocatable is the ceiling. A container with neither request nor
        // limit gets nothing, as in upstream v1.32 (request equals limit).
        assert_eq!(qos.files(0, 0), Vec::<(&str, String)>::new());
        assert_eq!(
            qos.files(200 * MI, 0),
            vec![
                ("memory.min", (200 * MI).to_string()),
                ("memory.high", (1820 * MI).to_string())
            ]
        );
        // Request = limit (no overcommit): memory.min alone.
        assert_eq!(
            qos.files(64 * MI, 64 * MI),
            vec![("memory.min", (64 * MI).to_string())]
        );
        // Rounded down to whole pages: 0.9 * 10000 bytes.
        assert_eq!(high(&qos.files(0, 10_000)), Some(8192));
        // Never at or below the request.
        let tight = MemoryQos {
            throttling_factor: 0.1,
            node_allocatable_memory: 0,
        };
        assert_eq!(high(&tight.files(4096, 4097)), None);
    }

    #[test]
    fn memory_qos_reaches_the_containers_unified_files() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u", "name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {
                "requests": {"memory": "100Mi"}, "limits": {"memory": "1000Mi"}}}]}
        }))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let qos = MemoryQos {
            throttling_factor: 0.9,
            node_allocatable_memory: 0,
        };
        let r = container_resources(&pod, c, 1 << 34, CfsQuota::default(), Some(qos));
        assert_eq!(r.unified.get("memory.min"), Some(&(100 * MI).to_string()));
        assert_eq!(r.unified.get("memory.high"), Some(&(910 * MI).to_string()));
        let r = container_resources(&pod, c, 1 << 34, CfsQuota::default(), None);
        assert!(!r.unified.contains_key("memory.min"));
        assert!(!r.unified.contains_key("memory.high"));
    }
}
