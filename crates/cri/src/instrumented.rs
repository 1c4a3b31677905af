//! A runtime wrapper that records upstream's CRI operation metrics
//! (pkg/kubelet/kuberuntime/instrumented_services.go): every call counts in
//! `kubelet_runtime_operations_total`, its duration goes to
//! `kubelet_runtime_operations_duration_seconds`, and a failed call also counts in
//! `kubelet_runtime_operations_errors_total`, all labelled by upstream's `operation_type`.

use crate::api::{
    AttachRequest, AuthConfig, Container, ContainerConfig, ContainerEventResponse, ContainerFilter,
    ContainerStats, ContainerStatsFilter, ContainerStatus, ExecRequest, ExecSyncResponse,
    FilesystemUsage, Image, ImageSpec, LinuxContainerResources, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxStatus, PortForwardRequest, StatusResponse, VersionResponse,
};
use crate::{ImageService, Result, Runtime, RuntimeService};
use futures::stream::BoxStream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation_type: &'static str,
}

type HistogramFamily = Family<OperationLabels, Histogram, fn() -> Histogram>;

/// Upstream's buckets: `ExponentialBuckets(.005, 2.5, 14)`, 5 ms to about 746 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.5, 14))
}

/// The three runtime operation families; clones share the same series.
#[derive(Debug, Clone)]
struct OperationMetrics {
    operations: Family<OperationLabels, Counter>,
    durations: HistogramFamily,
    errors: Family<OperationLabels, Counter>,
}

impl OperationMetrics {
    fn new() -> Self {
        OperationMetrics {
            operations: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            errors: Family::default(),
        }
    }
}

/// Wraps a [`Runtime`] and records every CRI call in upstream's runtime operation metrics.
#[derive(Debug, Clone)]
pub struct InstrumentedRuntime<R> {
    inner: R,
    metrics: OperationMetrics,
}

impl<R: Runtime> InstrumentedRuntime<R> {
    pub fn new(inner: R) -> Self {
        InstrumentedRuntime {
            inner,
            metrics: OperationMetrics::new(),
        }
    }

    /// The wrapped runtime; calls made on it directly are not recorded.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Adds the three families to `registry`. The client appends `_total` to counters, so the
    /// counters are registered without it; help texts are upstream's (the client adds the
    /// final period).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kubelet_runtime_operations",
            "[ALPHA] Cumulative number of runtime operations by operation type",
            self.metrics.operations.clone(),
        );
        registry.register(
            "kubelet_runtime_operations_duration_seconds",
            "[ALPHA] Duration in seconds of runtime operations. Broken down by operation type",
            self.metrics.durations.clone(),
        );
        registry.register(
            "kubelet_runtime_operations_errors",
            "[ALPHA] Cumulative number of runtime operation errors by operation type",
            self.metrics.errors.clone(),
        );
    }

    async fn record<T>(
        &self,
        operation_type: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let labels = OperationLabels { operation_type };
        let started = Instant::now();
        let result = call.await;
        if result.is_err() {
            self.metrics.errors.get_or_create(&labels).inc();
        }
        self.metrics.operations.get_or_create(&labels).inc();
        self.metrics
            .durations
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

#[async_trait::async_trait]
impl<R: Runtime> RuntimeService for InstrumentedRuntime<R> {
    async fn version(&self) -> Result<VersionResponse> {
        self.record("version", self.inner.version()).await
    }

    async fn status(&self) -> Result<StatusResponse> {
        self.record("status", self.inner.status()).await
    }

    async fn run_pod_sandbox(
        &self,
        config: PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        self.record(
            "run_podsandbox",
            self.inner.run_pod_sandbox(config, runtime_handler),
        )
        .await
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<()> {
        self.record("stop_podsandbox", self.inner.stop_pod_sandbox(sandbox_id))
            .await
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<()> {
        self.record(
            "remove_podsandbox",
            self.inner.remove_pod_sandbox(sandbox_id),
        )
        .await
    }

    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<PodSandboxStatus> {
        self.record(
            "podsandbox_status",
            self.inner.pod_sandbox_status(sandbox_id),
        )
        .await
    }

    async fn list_pod_sandbox(&self, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>> {
        self.record("list_podsandbox", self.inner.list_pod_sandbox(filter))
            .await
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String> {
        self.record(
            "create_container",
            self.inner
                .create_container(sandbox_id, config, sandbox_config),
        )
        .await
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        self.record("start_container", self.inner.start_container(container_id))
            .await
    }

    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<()> {
        self.record(
            "stop_container",
            self.inner.stop_container(container_id, timeout),
        )
        .await
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        self.record(
            "remove_container",
            self.inner.remove_container(container_id),
        )
        .await
    }

    async fn list_containers(&self, filter: Option<ContainerFilter>) -> Result<Vec<Container>> {
        self.record("list_containers", self.inner.list_containers(filter))
            .await
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus> {
        self.record(
            "container_status",
            self.inner.container_status(container_id),
        )
        .await
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        self.record(
            "reopen_container_log",
            self.inner.reopen_container_log(container_id),
        )
        .await
    }

    async fn update_container_resources(
        &self,
        container_id: &str,
        linux: LinuxContainerResources,
    ) -> Result<()> {
        self.record(
            "update_container_resources",
            self.inner.update_container_resources(container_id, linux),
        )
        .await
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResponse> {
        self.record(
            "exec_sync",
            self.inner.exec_sync(container_id, cmd, timeout),
        )
        .await
    }

    async fn exec(&self, request: ExecRequest) -> Result<String> {
        self.record("exec", self.inner.exec(request)).await
    }

    async fn attach(&self, request: AttachRequest) -> Result<String> {
        self.record("attach", self.inner.attach(request)).await
    }

    async fn port_forward(&self, request: PortForwardRequest) -> Result<String> {
        self.record("port_forward", self.inner.port_forward(request))
            .await
    }

    async fn list_container_stats(
        &self,
        filter: Option<ContainerStatsFilter>,
    ) -> Result<Vec<ContainerStats>> {
        self.record(
            "list_container_stats",
            self.inner.list_container_stats(filter),
        )
        .await
    }

    async fn container_events(&self) -> Result<BoxStream<'static, Result<ContainerEventResponse>>> {
        self.record("get_container_events", self.inner.container_events())
            .await
    }
}

#[async_trait::async_trait]
impl<R: Runtime> ImageService for InstrumentedRuntime<R> {
    async fn image_status(&self, image: &ImageSpec) -> Result<Option<Image>> {
        self.record("image_status", self.inner.image_status(image))
            .await
    }

    async fn pull_image(
        &self,
        image: &ImageSpec,
        auth: Option<AuthConfig>,
        sandbox_config: Option<PodSandboxConfig>,
    ) -> Result<String> {
        self.record(
            "pull_image",
            self.inner.pull_image(image, auth, sandbox_config),
        )
        .await
    }

    async fn list_images(&self) -> Result<Vec<Image>> {
        self.record("list_images", self.inner.list_images()).await
    }

    async fn remove_image(&self, image: &ImageSpec) -> Result<()> {
        self.record("remove_image", self.inner.remove_image(image))
            .await
    }

    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>> {
        self.record("image_fs_info", self.inner.image_fs_info())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ContainerMetadata, PodSandboxMetadata};
    use crate::fake::FakeRuntime;
    use prometheus_client::encoding::text::encode;

    fn sandbox_config() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".to_string(),
                uid: "uid-web".to_string(),
                namespace: "default".to_string(),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    fn container_config() -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "app".to_string(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: "busybox".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn exposition(runtime: &InstrumentedRuntime<FakeRuntime>) -> String {
        let mut registry = Registry::default();
        runtime.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        text
    }

    /// The value of the sample line that starts with `series` followed by a space.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.parse().ok()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn counts_each_operation_under_upstream_names() {
        let fake = FakeRuntime::new();
        fake.add_image("busybox");
        let runtime = InstrumentedRuntime::new(fake);
        let sandbox = runtime
            .run_pod_sandbox(sandbox_config(), "")
            .await
            .expect("sandbox");
        let container = runtime
            .create_container(&sandbox, container_config(), sandbox_config())
            .await
            .expect("create");
        runtime.start_container(&container).await.expect("start");
        runtime.list_containers(None).await.expect("list");
        runtime.list_containers(None).await.expect("list");
        runtime.list_images().await.expect("images");

        let text = exposition(&runtime);
        for (operation, count) in [
            ("run_podsandbox", 1.0),
            ("create_container", 1.0),
            ("start_container", 1.0),
            ("list_containers", 2.0),
            ("list_images", 1.0),
        ] {
            let series =
                format!("kubelet_runtime_operations_total{{operation_type=\"{operation}\"}}");
            assert_eq!(sample(&text, &series), Some(count), "{series} in\n{text}");
            let histogram_count = format!(
                "kubelet_runtime_operations_duration_seconds_count{{operation_type=\"{operation}\"}}"
            );
            assert_eq!(
                sample(&text, &histogram_count),
                Some(count),
                "{histogram_count}"
            );
        }
        assert!(
            !text.contains("kubelet_runtime_operations_errors_total{"),
            "no errors yet:\n{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn counts_errors_and_still_counts_the_operation() {
        let runtime = InstrumentedRuntime::new(FakeRuntime::new());
        runtime
            .inner()
            .inject_error("StopPodSandbox", "network plugin is not ready");
        let error = runtime.stop_pod_sandbox("nope").await;
        assert!(error.is_err(), "the injected error is passed through");

        let text = exposition(&runtime);
        let labels = "{operation_type=\"stop_podsandbox\"}";
        assert_eq!(
            sample(
                &text,
                &format!("kubelet_runtime_operations_errors_total{labels}")
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, &format!("kubelet_runtime_operations_total{labels}")),
            Some(1.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn observes_durations_in_upstream_buckets() {
        let fake = FakeRuntime::new();
        fake.set_pull_result("nginx", Ok(()));
        fake.set_pull_delay("nginx", Duration::from_millis(300));
        let runtime = InstrumentedRuntime::new(fake);
        let image = ImageSpec {
            image: "nginx".to_string(),
            ..Default::default()
        };
        runtime.pull_image(&image, None, None).await.expect("pull");

        let text = exposition(&runtime);
        let bucket = |le: &str| {
            sample(
                &text,
                &format!(
                    "kubelet_runtime_operations_duration_seconds_bucket{{le=\"{le}\",operation_type=\"pull_image\"}}"
                ),
            )
        };
        // 0.3 s falls between the buckets 0.1953125 and 0.48828125.
        assert_eq!(bucket("0.1953125"), Some(0.0), "{text}");
        assert_eq!(bucket("0.48828125"), Some(1.0), "{text}");
        assert_eq!(bucket("745.0580596923828"), Some(1.0), "{text}");
        assert_eq!(bucket("+Inf"), Some(1.0), "{text}");
    }
}
