//! The eviction message, in upstream's words (evictionMessage): the starved resource, the
//! threshold and what was available, then every container using more than it requested.

use super::signals::{Observations, Resource, describe};
use super::thresholds::Threshold;
use k8s_openapi::api::core::v1::{Container, Pod};
use kubelet_stats::types::PodStats;

/// The status reason and event reason of an eviction and of an admission refused under
/// pressure.
pub const REASON: &str = "Evicted";

fn container_request(container: &Container, resource: Resource) -> (u64, String) {
    let request = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get(resource.as_str()));
    match request {
        Some(q) => (
            kubelet_quantity::value(&q.0)
                .ok()
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            kubelet_quantity::canonical_string(&q.0).unwrap_or_else(|_| q.0.clone()),
        ),
        None => (0, "0".into()),
    }
}

pub fn eviction_message(
    resource: Resource,
    pod: &Pod,
    stats: Option<&PodStats>,
    thresholds: &[Threshold],
    seen: &Observations,
) -> String {
    let mut message = format!("The node was low on resource: {}. ", resource.as_str());
    let met = thresholds.iter().find_map(|t| {
        let (_, r) = describe(&t.signal)?;
        let signal = seen.signals.get(t.signal.as_str())?;
        (r == resource).then(|| (t.amount.display(signal.capacity), signal.available))
    });
    if let Some((quantity, available)) = met {
        message += &format!(
            "Threshold quantity: {quantity}, available: {}. ",
            resource.format(available)
        );
    }
    let (Some(stats), Some(spec)) = (stats, pod.spec.as_ref()) else {
        return message;
    };
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    for container_stats in &stats.containers {
        let Some(container) = containers.iter().find(|c| c.name == container_stats.name) else {
            continue;
        };
        let usage = match resource {
            Resource::Memory => container_stats
                .memory
                .as_ref()
                .and_then(|m| m.working_set_bytes),
            Resource::EphemeralStorage => {
                let rootfs = container_stats.rootfs.as_ref().and_then(|f| f.used_bytes);
                let logs = container_stats.logs.as_ref().and_then(|f| f.used_bytes);
                rootfs.zip(logs).map(|(r, l)| r + l)
            }
            Resource::Inodes | Resource::Pids => None,
        };
        let (request, request_text) = container_request(container, resource);
        if let Some(usage) = usage.filter(|u| *u > request) {
            message += &format!(
                "Container {} was using {}, request is {request_text}, has larger consumption of {}. ",
                container.name,
                resource.format(usage),
                resource.as_str()
            );
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::super::signals::Signal;
    use super::super::thresholds::Amount;
    use super::*;
    use kubelet_stats::types::{ContainerStats, MemoryStats, PodReference, Timestamp};
    use serde_json::json;
    use std::time::Duration;

    fn memory_stats(name: &str, working_set: u64) -> ContainerStats {
        ContainerStats {
            name: name.into(),
            start_time: Timestamp(0),
            cpu: None,
            memory: Some(MemoryStats {
                time: Timestamp(0),
                available_bytes: None,
                usage_bytes: None,
                working_set_bytes: Some(working_set),
                rss_bytes: None,
                page_faults: None,
                major_page_faults: None,
            }),
            rootfs: None,
            logs: None,
        }
    }

    #[test]
    fn names_the_threshold_and_the_containers_over_their_request() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [
                {"name": "x", "image": "busybox"},
                {"name": "y", "image": "busybox", "resources": {"requests": {"memory": "1Gi"}}},
                {"name": "z", "image": "busybox", "resources": {"requests": {"memory": "64Mi"}}}
            ]}
        }))
        .unwrap();
        let stats = PodStats {
            pod_ref: PodReference {
                name: "p".into(),
                namespace: "default".into(),
                uid: "u".into(),
            },
            start_time: Timestamp(0),
            containers: vec![
                memory_stats("x", 200 << 20),
                memory_stats("y", 300 << 20),
                memory_stats("z", 65 << 20),
            ],
            cpu: None,
            memory: None,
            network: None,
            volume: Vec::new(),
            ephemeral_storage: None,
        };
        let thresholds = [Threshold {
            signal: "memory.available".into(),
            amount: Amount::Quantity("100Mi".into(), 100 << 20),
            grace_period: Duration::ZERO,
            min_reclaim: None,
        }];
        let seen = Observations {
            signals: [(
                "memory.available",
                Signal {
                    available: 94 << 20,
                    capacity: 8 << 30,
                },
            )]
            .into(),
        };
        assert_eq!(
            eviction_message(Resource::Memory, &pod, Some(&stats), &thresholds, &seen),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 94Mi. \
             Container x was using 200Mi, request is 0, has larger consumption of memory. \
             Container z was using 65Mi, request is 64Mi, has larger consumption of memory. "
        );
        assert_eq!(
            eviction_message(Resource::Pids, &pod, None, &thresholds, &seen),
            "The node was low on resource: pids. "
        );
    }
}
