//! /metrics/resource and /metrics/cadvisor, read back with the text parser.

use super::fixture::{CONTAINER, NAMESPACE, POD, UID, fixture, fixture_with_cgroups, pod, write};
use super::promtext::Exposition;
use crate::resource_metrics;
use std::time::Duration;
use tempfile::TempDir;

#[tokio::test(start_paused = true)]
async fn resource_metrics_match_the_summary() {
    let f = fixture().await;
    tokio::time::advance(Duration::from_secs(3)).await;
    let summary = f
        .provider
        .summary(&f.fake, "node-a", &[])
        .await
        .expect("summary");
    let e = Exposition::parse(&resource_metrics(Some(&summary)));

    let container = &summary.pods[0].containers[0];
    let container_labels = [
        ("container", CONTAINER),
        ("pod", POD),
        ("namespace", NAMESPACE),
    ];
    let cpu = e.one("container_cpu_usage_seconds_total", &container_labels);
    let cpu_stats = container.cpu.as_ref().expect("cpu");
    assert_eq!(
        cpu.value,
        cpu_stats.usage_core_nano_seconds.expect("cumulative") as f64 / 1e9
    );
    assert_eq!(
        cpu.timestamp,
        Some(cpu_stats.time.millis()),
        "stamped with the sample's time"
    );
    assert_eq!(
        cpu.labels.len(),
        3,
        "exactly upstream's labels: {:?}",
        cpu.labels
    );
    let memory = e.one("container_memory_working_set_bytes", &container_labels);
    assert_eq!(
        memory.value,
        container
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes)
            .expect("ws") as f64
    );
    let start = e.one("container_start_time_seconds", &container_labels);
    assert_eq!(start.value, container.start_time.seconds());
    assert_eq!(start.timestamp, None);

    let pod_labels = [("pod", POD), ("namespace", NAMESPACE)];
    assert_eq!(
        e.one("pod_cpu_usage_seconds_total", &pod_labels)
            .labels
            .len(),
        2
    );
    assert_eq!(
        e.one("pod_memory_working_set_bytes", &pod_labels).value,
        memory.value
    );
    let node_cpu = e.one("node_cpu_usage_seconds_total", &[]);
    assert!(node_cpu.value > 0.0 && node_cpu.timestamp.is_some());
    assert!(e.one("node_memory_working_set_bytes", &[]).value > 0.0);
    assert_eq!(e.one("resource_scrape_error", &[]).value, 0.0);
    assert_eq!(e.types["node_cpu_usage_seconds_total"], "counter");
    assert_eq!(e.types["pod_memory_working_set_bytes"], "gauge");
}

#[test]
fn a_failed_scrape_reports_only_the_error() {
    let e = Exposition::parse(&resource_metrics(None));
    assert_eq!(e.samples.len(), 1, "{:?}", e.samples);
    assert_eq!(e.one("resource_scrape_error", &[]).value, 1.0);
}

#[tokio::test(start_paused = true)]
async fn cadvisor_metrics_carry_cadvisor_labels() {
    let cgroups = TempDir::new().expect("temp dir");
    let f = fixture_with_cgroups(cgroups.path().to_path_buf()).await;
    let cgroup = format!("kubepods/besteffort/pod{UID}/{}", f.container_id);
    write(
        &cgroups
            .path()
            .join("memory")
            .join(&cgroup)
            .join("memory.limit_in_bytes"),
        "67108864\n",
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    let text = f
        .provider
        .cadvisor_metrics(&f.fake, &[pod()])
        .await
        .expect("cadvisor");
    let e = Exposition::parse(&text);
    let labels = [
        ("container", CONTAINER),
        ("pod", POD),
        ("namespace", NAMESPACE),
        ("name", f.container_id.as_str()),
    ];
    let cpu = e.one("container_cpu_usage_seconds_total", &labels);
    assert_eq!(cpu.labels["cpu"], "total");
    assert_eq!(cpu.labels["id"], format!("/{cgroup}"));
    assert!(cpu.labels["image"].contains("busybox"), "{:?}", cpu.labels);
    assert!(cpu.value > 0.0 && cpu.timestamp.is_some());
    for name in [
        "container_memory_working_set_bytes",
        "container_memory_usage_bytes",
        "container_memory_rss",
        "container_last_seen",
    ] {
        let sample = e.one(name, &labels);
        assert!(sample.value > 0.0, "{name}: {sample:?}");
        let keys: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["container", "id", "image", "name", "namespace", "pod"]
        );
    }
    let limit = e.one("container_spec_memory_limit_bytes", &labels);
    assert_eq!(limit.value, 67108864.0);
    assert_eq!(limit.timestamp, None);
}

#[tokio::test(start_paused = true)]
async fn cadvisor_metrics_without_the_pod_have_no_cgroup() {
    let f = fixture().await;
    let text = f
        .provider
        .cadvisor_metrics(&f.fake, &[])
        .await
        .expect("cadvisor");
    let e = Exposition::parse(&text);
    let cpu = e.one(
        "container_cpu_usage_seconds_total",
        &[("container", CONTAINER)],
    );
    assert_eq!(cpu.labels["id"], "");
    assert!(e.find("container_spec_memory_limit_bytes", &[]).is_empty());
}
