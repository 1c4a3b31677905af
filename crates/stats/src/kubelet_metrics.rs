//! The kubelet's own /metrics families with upstream's names, labels and buckets
//! (pkg/kubelet/metrics/metrics.go), plus the process and build metrics.

use crate::process::ProcessCollector;
use kubelet_cri::api::ContainerState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Upstream's podStartupDurationBuckets: round numbers from half a second to an hour.
const POD_STARTUP_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];
/// Prometheus' DefBuckets, which upstream uses for the worker and PLEG histograms.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn default_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerStateLabels {
    container_state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StaticLabels {
    r#static: &'static str,
}

/// What kubernetes_build_info reports. The Go-specific label keeps its name so dashboards
/// that group by it still work; it holds the Rust compiler's version here.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildInfo {
    pub build_date: String,
    pub compiler: String,
    pub git_commit: String,
    pub git_tree_state: String,
    pub git_version: String,
    pub go_version: String,
    pub major: String,
    pub minor: String,
    pub platform: String,
}

impl Default for BuildInfo {
    fn default() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        BuildInfo {
            build_date: String::new(),
            compiler: "rustc".to_string(),
            git_commit: String::new(),
            git_tree_state: String::new(),
            git_version: format!("v{}", env!("CARGO_PKG_VERSION")),
            go_version: String::new(),
            major: String::new(),
            minor: String::new(),
            platform: format!("{}/{arch}", std::env::consts::OS),
        }
    }
}

type HistogramFamily = Family<OperationLabels, Histogram, fn() -> Histogram>;

/// The kubelet's metrics and the registry that exposes them. Other parts register their
/// families (runtime operations, probes) through [`KubeletMetrics::registry_mut`].
#[derive(Debug)]
pub struct KubeletMetrics {
    registry: Registry,
    pod_start_duration: Histogram,
    pod_start_sli_duration: Histogram,
    pod_worker_duration: HistogramFamily,
    running_pods: Gauge,
    running_containers: Family<ContainerStateLabels, Gauge>,
    pleg_relist_duration: Histogram,
    pleg_relist_interval: Histogram,
    evented_pleg_connection_success: Counter,
    evented_pleg_connection_error: Counter,
    evented_pleg_connection_latency: Histogram,
    node_name: Family<NodeLabels, Gauge>,
    started_pods: Counter,
    restarted_pods: Family<StaticLabels, Counter>,
}

impl KubeletMetrics {
    pub fn new(node_name: &str, build: BuildInfo) -> Self {
        let metrics = KubeletMetrics {
            registry: Registry::default(),
            pod_start_duration: Histogram::new(POD_STARTUP_BUCKETS),
            pod_start_sli_duration: Histogram::new(POD_STARTUP_BUCKETS),
            pod_worker_duration: Family::new_with_constructor(default_histogram),
            running_pods: Gauge::default(),
            running_containers: Family::default(),
            pleg_relist_duration: default_histogram(),
            pleg_relist_interval: default_histogram(),
            evented_pleg_connection_success: Counter::default(),
            evented_pleg_connection_error: Counter::default(),
            evented_pleg_connection_latency: default_histogram(),
            node_name: Family::default(),
            started_pods: Counter::default(),
            restarted_pods: Family::default(),
        };
        metrics
            .node_name
            .get_or_create(&NodeLabels {
                node: node_name.to_string(),
            })
            .set(1);
        metrics.registered(build)
    }

    /// Help texts are upstream's with their stability tag; the client adds the final period
    /// and appends `_total` to counter names, so counters are registered without it.
    fn registered(mut self, build: BuildInfo) -> Self {
        let r = &mut self.registry;
        r.register(
            "kubelet_pod_start_duration_seconds",
            "[ALPHA] Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            self.pod_start_duration.clone(),
        );
        r.register(
            "kubelet_pod_start_sli_duration_seconds",
            "[ALPHA] Duration in seconds to start a pod, excluding time to pull images and run init containers, measured from pod creation timestamp to when all its containers are reported as started and observed via watch",
            self.pod_start_sli_duration.clone(),
        );
        r.register(
            "kubelet_pod_worker_duration_seconds",
            "[ALPHA] Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
            self.pod_worker_duration.clone(),
        );
        r.register(
            "kubelet_running_pods",
            "[ALPHA] Number of pods that have a running pod sandbox",
            self.running_pods.clone(),
        );
        r.register(
            "kubelet_running_containers",
            "[ALPHA] Number of containers currently running",
            self.running_containers.clone(),
        );
        r.register(
            "kubelet_pleg_relist_duration_seconds",
            "[ALPHA] Duration in seconds for relisting pods in PLEG",
            self.pleg_relist_duration.clone(),
        );
        r.register(
            "kubelet_pleg_relist_interval_seconds",
            "[ALPHA] Interval in seconds between relisting in PLEG",
            self.pleg_relist_interval.clone(),
        );
        // Upstream counters whose names end in _count: the text gains _total like any counter
        // here (as Prometheus' own OpenMetrics scrape of the Go kubelet shows them).
        r.register(
            "kubelet_evented_pleg_connection_success_count",
            "[ALPHA] The number of times a streaming client was obtained to receive CRI Events",
            self.evented_pleg_connection_success.clone(),
        );
        r.register(
            "kubelet_evented_pleg_connection_error_count",
            "[ALPHA] The number of errors encountered during the establishment of streaming connection with the CRI runtime",
            self.evented_pleg_connection_error.clone(),
        );
        r.register(
            "kubelet_evented_pleg_connection_latency_seconds",
            "[ALPHA] The latency of streaming connection with the CRI runtime, measured in seconds",
            self.evented_pleg_connection_latency.clone(),
        );
        r.register(
            "kubelet_node_name",
            "[ALPHA] The node's name. The count is always 1",
            self.node_name.clone(),
        );
        r.register(
            "kubelet_started_pods",
            "[ALPHA] Cumulative number of pods started",
            self.started_pods.clone(),
        );
        r.register(
            "kubelet_restarted_pods",
            "[ALPHA] Number of pods that have been restarted because they were deleted and recreated with the same UID while the kubelet was watching them (common for static pods, extremely uncommon for API pods)",
            self.restarted_pods.clone(),
        );
        let build_info: Family<BuildInfo, Gauge> = Family::default();
        build_info.get_or_create(&build).set(1);
        r.register(
            "kubernetes_build_info",
            "[ALPHA] A metric with a constant '1' value labeled by major, minor, git version, git commit, git tree state, build date, Go version, and compiler from which Kubernetes was built, and platform on which it is running",
            build_info,
        );
        r.register_collector(Box::new(ProcessCollector));
        self
    }

    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// From the kubelet first seeing a pod to the pod running.
    pub fn observe_pod_start(&self, duration: Duration) {
        self.pod_start_duration.observe(duration.as_secs_f64());
    }

    /// From pod creation to all containers started, image pulls excluded.
    pub fn observe_pod_start_sli(&self, duration: Duration) {
        self.pod_start_sli_duration.observe(duration.as_secs_f64());
    }

    /// One pod sync; `operation_type` is upstream's update type: create, update, sync or kill.
    pub fn observe_pod_worker(&self, operation_type: &str, duration: Duration) {
        self.pod_worker_duration
            .get_or_create(&OperationLabels {
                operation_type: operation_type.to_string(),
            })
            .observe(duration.as_secs_f64());
    }

    pub fn set_running_pods(&self, count: i64) {
        self.running_pods.set(count);
    }

    /// The number of containers in `state`, labelled as upstream does (created, running,
    /// exited, unknown).
    pub fn set_running_containers(&self, state: ContainerState, count: i64) {
        let container_state = match state {
            ContainerState::ContainerCreated => "created",
            ContainerState::ContainerRunning => "running",
            ContainerState::ContainerExited => "exited",
            ContainerState::ContainerUnknown => "unknown",
        };
        self.running_containers
            .get_or_create(&ContainerStateLabels { container_state })
            .set(count);
    }

    pub fn observe_pleg_relist(&self, duration: Duration) {
        self.pleg_relist_duration.observe(duration.as_secs_f64());
    }

    pub fn observe_pleg_relist_interval(&self, interval: Duration) {
        self.pleg_relist_interval.observe(interval.as_secs_f64());
    }

    /// The PLEG subscribed to the runtime's container events.
    pub fn inc_evented_pleg_connection(&self) {
        self.evented_pleg_connection_success.inc();
    }

    /// Subscribing to the runtime's container events failed, or the stream broke.
    pub fn inc_evented_pleg_connection_error(&self) {
        self.evented_pleg_connection_error.inc();
    }

    /// From the runtime creating a container event to the PLEG receiving it.
    pub fn observe_evented_pleg_latency(&self, latency: Duration) {
        self.evented_pleg_connection_latency
            .observe(latency.as_secs_f64());
    }

    /// A pod sandbox was created.
    pub fn inc_started_pods(&self) {
        self.started_pods.inc();
    }

    /// A pod was deleted and recreated with the same UID.
    pub fn inc_restarted_pods(&self, is_static: bool) {
        let r#static = if is_static { "true" } else { "false" };
        self.restarted_pods
            .get_or_create(&StaticLabels { r#static })
            .inc();
    }

    /// The /metrics body in the OpenMetrics text format (serve it as
    /// [`OPENMETRICS_CONTENT_TYPE`](crate::exposition::OPENMETRICS_CONTENT_TYPE)).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// The /metrics body in the Prometheus text format 0.0.4 (serve it as
    /// [`CONTENT_TYPE`](crate::exposition::CONTENT_TYPE)), what upstream answers by default.
    pub fn encode_prometheus_text(&self) -> String {
        crate::exposition::openmetrics_to_prometheus(&self.encode())
    }
}
