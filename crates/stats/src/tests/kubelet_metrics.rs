use super::promtext::Exposition;
use crate::{BuildInfo, KubeletMetrics};
use kubelet_cri::api::ContainerState;
use std::time::Duration;

fn buckets(exposition: &Exposition, name: &str) -> Vec<String> {
    exposition
        .find(&format!("{name}_bucket"), &[])
        .iter()
        .map(|s| s.labels["le"].clone())
        .collect()
}

fn les(bounds: &[&str]) -> Vec<String> {
    bounds.iter().map(|b| b.to_string()).collect()
}

#[test]
fn exposes_upstream_names_labels_and_values() {
    let metrics = KubeletMetrics::new("node-a", BuildInfo::default());
    metrics.observe_pod_start(Duration::from_millis(1500));
    metrics.observe_pod_start_sli(Duration::from_secs(7));
    metrics.observe_pod_worker("sync", Duration::from_millis(30));
    metrics.set_running_pods(3);
    metrics.set_running_containers(ContainerState::ContainerRunning, 4);
    metrics.set_running_containers(ContainerState::ContainerExited, 1);
    metrics.observe_pleg_relist(Duration::from_millis(2));
    metrics.observe_pleg_relist_interval(Duration::from_secs(1));
    metrics.inc_started_pods();
    metrics.inc_restarted_pods(true);
    metrics.inc_evented_pleg_connection();
    metrics.inc_evented_pleg_connection_error();
    metrics.inc_evented_pleg_connection_error();
    metrics.observe_evented_pleg_latency(Duration::from_millis(3));
    let text = metrics.encode();
    let e = Exposition::parse(&text);

    assert_eq!(e.one("kubelet_node_name", &[("node", "node-a")]).value, 1.0);
    assert_eq!(e.one("kubelet_running_pods", &[]).value, 3.0);
    assert_eq!(
        e.one(
            "kubelet_running_containers",
            &[("container_state", "running")]
        )
        .value,
        4.0
    );
    assert_eq!(
        e.one(
            "kubelet_running_containers",
            &[("container_state", "exited")]
        )
        .value,
        1.0
    );
    assert_eq!(e.one("kubelet_started_pods_total", &[]).value, 1.0);
    assert_eq!(
        e.one("kubelet_restarted_pods_total", &[("static", "true")])
            .value,
        1.0
    );
    assert_eq!(
        e.one(
            "kubelet_pod_worker_duration_seconds_count",
            &[("operation_type", "sync")]
        )
        .value,
        1.0
    );
    assert_eq!(
        e.one("kubelet_pod_start_duration_seconds_count", &[]).value,
        1.0
    );
    assert_eq!(
        e.one(
            "kubelet_pod_start_duration_seconds_bucket",
            &[("le", "1.0")]
        )
        .value,
        0.0
    );
    assert_eq!(
        e.one(
            "kubelet_pod_start_duration_seconds_bucket",
            &[("le", "2.0")]
        )
        .value,
        1.0
    );
    assert_eq!(
        e.one("kubelet_pod_start_sli_duration_seconds_sum", &[])
            .value,
        7.0
    );
    assert_eq!(
        e.one("kubelet_pleg_relist_duration_seconds_count", &[])
            .value,
        1.0
    );
    assert_eq!(
        e.one("kubelet_pleg_relist_interval_seconds_sum", &[]).value,
        1.0
    );
    assert_eq!(
        e.one("kubelet_evented_pleg_connection_success_count_total", &[])
            .value,
        1.0
    );
    assert_eq!(
        e.one("kubelet_evented_pleg_connection_error_count_total", &[])
            .value,
        2.0
    );
    assert_eq!(
        e.one(
            "kubelet_evented_pleg_connection_latency_seconds_bucket",
            &[("le", "0.005")]
        )
        .value,
        1.0
    );
    assert_eq!(e.types["kubelet_started_pods"], "counter");
    assert_eq!(e.types["kubelet_pod_start_duration_seconds"], "histogram");
    assert_eq!(
        e.one("kubernetes_build_info", &[("compiler", "rustc")])
            .value,
        1.0
    );
}

#[test]
fn histograms_have_upstream_buckets() {
    let metrics = KubeletMetrics::new("node-a", BuildInfo::default());
    metrics.observe_pod_start(Duration::ZERO);
    metrics.observe_pod_start_sli(Duration::ZERO);
    metrics.observe_pleg_relist(Duration::ZERO);
    metrics.observe_pleg_relist_interval(Duration::ZERO);
    metrics.observe_pod_worker("create", Duration::ZERO);
    let e = Exposition::parse(&metrics.encode());
    let startup = les(&[
        "0.5", "1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "8.0", "10.0", "20.0", "30.0", "45.0",
        "60.0", "120.0", "180.0", "240.0", "300.0", "360.0", "480.0", "600.0", "900.0", "1200.0",
        "1800.0", "2700.0", "3600.0", "+Inf",
    ]);
    let default = les(&[
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf",
    ]);
    assert_eq!(buckets(&e, "kubelet_pod_start_duration_seconds"), startup);
    assert_eq!(
        buckets(&e, "kubelet_pod_start_sli_duration_seconds"),
        startup
    );
    assert_eq!(buckets(&e, "kubelet_pleg_relist_duration_seconds"), default);
    assert_eq!(buckets(&e, "kubelet_pleg_relist_interval_seconds"), default);
    assert_eq!(buckets(&e, "kubelet_pod_worker_duration_seconds"), default);
}

#[test]
fn process_metrics_describe_this_process() {
    let e = Exposition::parse(&KubeletMetrics::new("n", BuildInfo::default()).encode());
    assert!(e.one("process_resident_memory_bytes", &[]).value > 0.0);
    assert!(e.one("process_open_fds", &[]).value > 0.0);
    assert!(e.one("process_cpu_seconds_total", &[]).value >= 0.0);
    let started = e.one("process_start_time_seconds", &[]).value;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        started > 1.0e9 && started <= now + 1.0,
        "{started} vs {now}"
    );
}

#[test]
fn prometheus_text_names_counter_families_with_total() {
    let metrics = KubeletMetrics::new("node-a", BuildInfo::default());
    metrics.inc_started_pods();
    let text = metrics.encode_prometheus_text();
    assert!(
        text.contains("# TYPE kubelet_started_pods_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# HELP kubelet_started_pods_total [ALPHA] "),
        "{text}"
    );
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE kubelet_running_pods gauge\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    let e = Exposition::parse(&text);
    assert_eq!(e.types["kubelet_started_pods_total"], "counter");
    assert_eq!(e.one("kubelet_started_pods_total", &[]).value, 1.0);
}

#[tokio::test]
async fn runtime_operations_join_the_kubelet_registry() {
    use kubelet_cri::RuntimeService;
    use kubelet_cri::fake::FakeRuntime;
    use kubelet_cri::instrumented::InstrumentedRuntime;

    let mut metrics = KubeletMetrics::new("node-a", BuildInfo::default());
    let runtime = InstrumentedRuntime::new(FakeRuntime::new());
    runtime.register(metrics.registry_mut());
    runtime.version().await.expect("version");
    let e = Exposition::parse(&metrics.encode_prometheus_text());
    let labels = [("operation_type", "version")];
    assert_eq!(
        e.one("kubelet_runtime_operations_total", &labels).value,
        1.0
    );
    assert_eq!(e.types["kubelet_runtime_operations_total"], "counter");
    assert_eq!(
        e.one("kubelet_runtime_operations_duration_seconds_count", &labels)
            .value,
        1.0
    );
}
