//! /metrics/resource, which metrics-server scrapes: CPU and memory of the node, pods and
//! containers from the Summary (pkg/kubelet/metrics/collectors/resource_metrics.go), each
//! stamped with the time its figure was measured.

use crate::exposition::{FamilyText, Kind, render};
use crate::types::{CpuStats, MemoryStats, Summary, Timestamp};

const NANOS_PER_SECOND: f64 = 1e9;

fn cpu_seconds(cpu: &Option<CpuStats>) -> Option<(f64, Timestamp)> {
    let cpu = cpu.as_ref()?;
    Some((
        cpu.usage_core_nano_seconds? as f64 / NANOS_PER_SECOND,
        cpu.time,
    ))
}

fn working_set(memory: &Option<MemoryStats>) -> Option<(f64, Timestamp)> {
    let memory = memory.as_ref()?;
    Some((memory.working_set_bytes? as f64, memory.time))
}

/// The endpoint's body; `None` when the stats could not be gathered, which upstream reports
/// as `resource_scrape_error 1` alone.
pub fn resource_metrics(summary: Option<&Summary>) -> String {
    let mut node_cpu = FamilyText::new(
        "node_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        Kind::Counter,
    );
    let mut node_memory = FamilyText::new(
        "node_memory_working_set_bytes",
        "[STABLE] Current working set of the node in bytes",
        Kind::Gauge,
    );
    let mut container_cpu = FamilyText::new(
        "container_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        Kind::Counter,
    );
    let mut container_memory = FamilyText::new(
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container in bytes",
        Kind::Gauge,
    );
    let mut container_start = FamilyText::new(
        "container_start_time_seconds",
        "[STABLE] Start time of the container since unix epoch in seconds",
        Kind::Gauge,
    );
    let mut pod_cpu = FamilyText::new(
        "pod_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        Kind::Counter,
    );
    let mut pod_memory = FamilyText::new(
        "pod_memory_working_set_bytes",
        "[STABLE] Current working set of the pod in bytes",
        Kind::Gauge,
    );
    let mut scrape_error = FamilyText::new(
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        Kind::Gauge,
    );
    scrape_error.push(vec![], if summary.is_some() { 0.0 } else { 1.0 }, None);

    if let Some(summary) = summary {
        if let Some((value, time)) = cpu_seconds(&summary.node.cpu) {
            node_cpu.push(vec![], value, Some(time.millis()));
        }
        if let Some((value, time)) = working_set(&summary.node.memory) {
            node_memory.push(vec![], value, Some(time.millis()));
        }
        for pod in &summary.pods {
            let pod_labels = || {
                vec![
                    ("pod", pod.pod_ref.name.clone()),
                    ("namespace", pod.pod_ref.namespace.clone()),
                ]
            };
            for container in &pod.containers {
                let labels = || {
                    let mut labels = vec![("container", container.name.clone())];
                    labels.extend(pod_labels());
                    labels
                };
                // Upstream stamps the start time with no measurement time, and skips it when
                // unknown.
                if container.start_time.0 > 0 {
                    container_start.push(labels(), container.start_time.seconds(), None);
                }
                if let Some((value, time)) = cpu_seconds(&container.cpu) {
                    container_cpu.push(labels(), value, Some(time.millis()));
                }
                if let Some((value, time)) = working_set(&container.memory) {
                    container_memory.push(labels(), value, Some(time.millis()));
                }
            }
            if let Some((value, time)) = cpu_seconds(&pod.cpu) {
                pod_cpu.push(pod_labels(), value, Some(time.millis()));
            }
            if let Some((value, time)) = working_set(&pod.memory) {
                pod_memory.push(pod_labels(), value, Some(time.millis()));
            }
        }
    }
    render(vec![
        node_cpu,
        node_memory,
        container_cpu,
        container_memory,
        container_start,
        pod_cpu,
        pod_memory,
        scrape_error,
    ])
}
