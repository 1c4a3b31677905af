//! The order pods are evicted in (upstream rankMemoryPressure, rankDiskPressureFunc and
//! rankPIDPressure): first the pods using more than they requested (or with no stats at all),
//! then the lowest priority, then the largest use above the request.

use super::signals::{Condition, Resource, describe};
use crate::admission::resources::{EPHEMERAL_STORAGE, MEMORY, pod_requests};
use k8s_openapi::api::core::v1::Pod;
use kubelet_nodeshutdown::effective_priority;
use std::cmp::Ordering;

/// What a pod uses, as the summary (and its pod cgroup for pids) reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodUsage {
    /// Working set bytes.
    pub memory: u64,
    /// Writable layers, logs and local volumes.
    pub disk_bytes: u64,
    pub disk_inodes: u64,
    pub pids: u64,
}

/// A pod that may be evicted; `usage` is None when the summary had no stats for it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub pod: Pod,
    pub usage: Option<PodUsage>,
}

/// Upstream cmpBool: true sorts first.
fn true_first(a: bool, b: bool) -> Ordering {
    b.cmp(&a)
}

fn request(pod: &Pod, resource: &str) -> i128 {
    pod_requests(pod)
        .get(resource)
        .copied()
        .map_or(0, i128::from)
}

/// Pods without stats go first; otherwise `by` decides.
fn with_stats(
    a: &Candidate,
    b: &Candidate,
    by: impl Fn(&Pod, PodUsage, &Pod, PodUsage) -> Ordering,
) -> Ordering {
    match (a.usage, b.usage) {
        (Some(ua), Some(ub)) => by(&a.pod, ua, &b.pod, ub),
        (ua, ub) => true_first(ua.is_none(), ub.is_none()),
    }
}

/// Lower priority first.
fn priority(a: &Candidate, b: &Candidate) -> Ordering {
    effective_priority(&a.pod).cmp(&effective_priority(&b.pod))
}

/// The figure a ranking compares, with the request it is weighed against.
fn used(resource: Resource, pod: &Pod, usage: PodUsage) -> (i128, i128) {
    match resource {
        Resource::Memory => (i128::from(usage.memory), request(pod, MEMORY)),
        Resource::EphemeralStorage => (
            i128::from(usage.disk_bytes),
            request(pod, EPHEMERAL_STORAGE),
        ),
        // Nothing requests inodes; upstream weighs them against the storage request.
        Resource::Inodes => (i128::from(usage.disk_inodes), 0),
        Resource::Pids => (i128::from(usage.pids), 0),
    }
}

/// Using more than requested first.
fn exceeds_requests(resource: Resource) -> impl Fn(&Candidate, &Candidate) -> Ordering {
    move |a, b| {
        with_stats(a, b, |pa, ua, pb, ub| {
            let (used_a, req_a) = used(resource, pa, ua);
            let (used_b, req_b) = used(resource, pb, ub);
            true_first(used_a > req_a, used_b > req_b)
        })
    }
}

/// The larger use above the request first.
fn above_request(resource: Resource) -> impl Fn(&Candidate, &Candidate) -> Ordering {
    move |a, b| {
        with_stats(a, b, |pa, ua, pb, ub| {
            let request_of = |pod: &Pod| match resource {
                Resource::Inodes => request(pod, EPHEMERAL_STORAGE),
                _ => used(resource, pod, PodUsage::default()).1,
            };
            let above_a = used(resource, pa, ua).0 - request_of(pa);
            let above_b = used(resource, pb, ub).0 - request_of(pb);
            above_b.cmp(&above_a)
        })
    }
}

/// The largest process count first.
fn processes(a: &Candidate, b: &Candidate) -> Ordering {
    with_stats(a, b, |_, ua, _, ub| ub.pids.cmp(&ua.pids))
}

/// Orders `pods` for eviction under pressure on `signal`; the first goes first.
pub fn rank(signal: &str, pods: &mut [Candidate]) {
    let Some((condition, resource)) = describe(signal) else {
        return;
    };
    match condition {
        Condition::Pid => pods.sort_by(|a, b| priority(a, b).then_with(|| processes(a, b))),
        Condition::Memory | Condition::Disk => {
            let exceeds = exceeds_requests(resource);
            let above = above_request(resource);
            pods.sort_by(|a, b| {
                exceeds(a, b)
                    .then_with(|| priority(a, b))
                    .then_with(|| above(a, b))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32, memory_request: Option<&str>) -> Pod {
        let resources = match memory_request {
            Some(r) => json!({"requests": {"memory": r, "ephemeral-storage": r}}),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name},
            "spec": {
                "priority": priority,
                "containers": [{"name": "c", "image": "busybox", "resources": resources}]
            }
        }))
        .unwrap()
    }

    fn candidate(pod: Pod, usage: Option<u64>) -> Candidate {
        Candidate {
            pod,
            usage: usage.map(|u| PodUsage {
                memory: u,
                disk_bytes: u,
                disk_inodes: u,
                pids: u,
            }),
        }
    }

    fn names(pods: &[Candidate]) -> Vec<&str> {
        pods.iter()
            .map(|c| c.pod.metadata.name.as_deref().unwrap())
            .collect()
    }

    const MI: u64 = 1 << 20;

    #[test]
    fn memory_usage_above_requests_then_priority_then_usage() {
        let mut pods = vec![
            // Within its request, low priority: last despite the largest usage.
            candidate(pod("within", 0, Some("1Gi")), Some(900 * MI)),
            // Over its request with high priority: after the low-priority ones over theirs.
            candidate(pod("important", 1000, None), Some(500 * MI)),
            candidate(pod("small", 0, None), Some(10 * MI)),
            candidate(pod("big", 0, Some("100Mi")), Some(400 * MI)),
            candidate(pod("unmeasured", 1000, None), None),
        ];
        rank("memory.available", &mut pods);
        assert_eq!(
            names(&pods),
            ["unmeasured", "big", "small", "important", "within"]
        );
    }

    #[test]
    fn disk_ranks_the_same_way_with_disk_usage() {
        let mut pods = vec![
            candidate(pod("quiet", 0, None), Some(MI)),
            candidate(pod("writer", 0, None), Some(800 * MI)),
            candidate(pod("reserved", 0, Some("1Gi")), Some(900 * MI)),
        ];
        rank("nodefs.available", &mut pods);
        assert_eq!(names(&pods), ["writer", "quiet", "reserved"]);
        rank("imagefs.inodesFree", &mut pods);
        assert_eq!(names(&pods)[0], "writer");
    }

    #[test]
    fn pids_rank_by_priority_then_process_count() {
        let mut pods = vec![
            candidate(pod("many-important", 10, None), Some(500)),
            candidate(pod("few", 0, None), Some(5)),
            candidate(pod("many", 0, None), Some(300)),
        ];
        rank("pid.available", &mut pods);
        assert_eq!(names(&pods), ["many", "few", "many-important"]);
    }
}
