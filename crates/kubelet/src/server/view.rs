//! What the kubelet API server reads from the running kubelet.

use super::healthz::Health;
use super::read_only::pod_list;
use crate::pod_manager::PodManager;
use crate::status::StatusManager;
use k8s_openapi::api::core::v1::Pod;
use kubelet_config::{ContainerRuntime, KubeletConfig};
use kubelet_cri::Runtime;
use kubelet_cri::api::{ContainerState, PodSandboxState};
use kubelet_server::{KubeletView, MetricsPath};
use kubelet_stats::{KubeletMetrics, StatsProvider};
use prometheus_client::registry::Registry;
use serde_json::json;
use std::sync::Arc;

pub struct View {
    pub node_name: String,
    pub pods: PodManager,
    pub status: Arc<StatusManager>,
    pub runtime: Arc<dyn Runtime>,
    pub health: Health,
    pub configz: serde_json::Value,
    pub metrics: Arc<KubeletMetrics>,
    /// prober_probe_total, served alone on /metrics/probes as upstream does.
    pub probe_metrics: Arc<Registry>,
    pub stats: Arc<StatsProvider>,
}

impl View {
    /// Running pods and containers as the runtime has them, set just before a scrape.
    async fn count_running(&self) {
        if let Ok(sandboxes) = self.runtime.list_pod_sandbox(None).await {
            let ready = sandboxes
                .iter()
                .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
                .count();
            self.metrics.set_running_pods(ready as i64);
        }
        if let Ok(containers) = self.runtime.list_containers(None).await {
            for state in [
                ContainerState::ContainerCreated,
                ContainerState::ContainerRunning,
                ContainerState::ContainerExited,
                ContainerState::ContainerUnknown,
            ] {
                let n = containers
                    .iter()
                    .filter(|c| c.state == state as i32)
                    .count();
                self.metrics.set_running_containers(state, n as i64);
            }
        }
    }
}

/// The resolved configuration in KubeletConfiguration (v1beta1) field names, as /configz shows it.
pub fn configz(cfg: &KubeletConfig) -> serde_json::Value {
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs());
    // The embedded runtime shows as the socket it is served on, so the endpoint shown is one a
    // CRI client can use either way.
    let (runtime_endpoint, image_endpoint) = match &cfg.container_runtime {
        ContainerRuntime::Remote {
            endpoint,
            image_endpoint,
        } => (endpoint.clone(), image_endpoint.clone()),
        ContainerRuntime::Builtin => {
            let socket = format!("unix://{}", cfg.builtin_runtime_socket().display());
            (socket.clone(), socket)
        }
    };
    let mut configz = json!({"kubeletconfig": {
        "staticPodPath": cfg.static_pod_path,
        "staticPodURL": cfg.static_pod_url,
        "syncFrequency": secs(cfg.sync_frequency),
        "volumeStatsAggPeriod": secs(cfg.volume_stats_agg_period),
        "fileCheckFrequency": secs(cfg.file_check_frequency),
        "httpCheckFrequency": secs(cfg.http_check_frequency),
        "address": cfg.address.to_string(),
        "readOnlyPort": cfg.read_only_port,
        "healthzPort": cfg.healthz_port,
        "healthzBindAddress": cfg.healthz_bind_address.to_string(),
        "clusterDomain": cfg.cluster_domain,
        "clusterDNS": cfg.cluster_dns.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
        "resolvConf": cfg.resolv_conf,
        "maxPods": cfg.max_pods,
        "cgroupDriver": match cfg.cgroup_driver { kubelet_config::CgroupDriver::Cgroupfs => "cgroupfs", kubelet_config::CgroupDriver::Systemd => "systemd" },
        "cgroupRoot": cfg.cgroup_root,
        "cgroupsPerQOS": cfg.cgroups_per_qos,
        "containerRuntimeEndpoint": runtime_endpoint,
        "imageServiceEndpoint": image_endpoint,
        "runtimeRequestTimeout": secs(cfg.runtime_request_timeout),
        "serializeImagePulls": cfg.serialize_image_pulls,
        "podLogsDir": cfg.pod_logs_dir,
        "containerLogMaxSize": cfg.container_log_max_size,
        "containerLogMaxFiles": cfg.container_log_max_files,
        "shutdownGracePeriod": secs(cfg.shutdown_grace_period),
        "shutdownGracePeriodCriticalPods": secs(cfg.shutdown_grace_period_critical_pods),
    }});
    // kubelet-rs: the built-in runtime's settings, when it is the one in use.
    if cfg.container_runtime == ContainerRuntime::Builtin {
        let builtin = &cfg.builtin_runtime;
        configz["kubeletconfig"]["builtinRuntime"] = json!({
            "root": builtin.root,
            "state": builtin.state,
            "cniConfDir": builtin.cni_conf_dir,
            "cniBinDirs": builtin.cni_bin_dirs,
            "registryConfig": builtin.registry_config,
        });
    }
    configz
}

#[async_trait::async_trait]
impl KubeletView for View {
    fn node_name(&self) -> String {
        self.node_name.clone()
    }

    fn pods(&self) -> Vec<Pod> {
        pod_list(&self.pods, &self.status).items
    }

    fn runtime(&self) -> Arc<dyn Runtime> {
        self.runtime.clone()
    }

    fn sync_loop_healthy(&self) -> Result<(), String> {
        self.health.check()
    }

    fn configz(&self) -> serde_json::Value {
        self.configz.clone()
    }

    async fn metrics(&self, path: MetricsPath) -> Option<String> {
        Some(match path {
            MetricsPath::Kubelet => {
                self.count_running().await;
                self.metrics.encode_prometheus_text()
            }
            MetricsPath::Probes => {
                let mut text = String::new();
                prometheus_client::encoding::text::encode(&mut text, &self.probe_metrics).ok()?;
                text
            }
            MetricsPath::Resource => {
                let summary = self
                    .stats
                    .summary(self.runtime.as_ref(), &self.node_name, &self.pods())
                    .await;
                if let Err(e) = &summary {
                    tracing::warn!("resource metrics: {e}");
                }
                kubelet_stats::resource_metrics(summary.as_ref().ok())
            }
            MetricsPath::Cadvisor => match self
                .stats
                .cadvisor_metrics(self.runtime.as_ref(), &self.pods())
                .await
            {
                Ok(text) => text,
                Err(e) => {
                    tracing::warn!("cadvisor metrics: {e}");
                    return None;
                }
            },
        })
    }

    async fn stats_summary(&self) -> Option<Result<serde_json::Value, String>> {
        let summary = self
            .stats
            .summary(self.runtime.as_ref(), &self.node_name, &self.pods())
            .await;
        Some(
            summary
                .map_err(|e| e.to_string())
                .and_then(|s| serde_json::to_value(s).map_err(|e| e.to_string())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::configz;
    use kubelet_config::{Command, KubeletConfig};

    fn config(args: &[&str]) -> KubeletConfig {
        let args = args.iter().map(|arg| arg.to_string());
        match kubelet_config::parse_args(args) {
            Ok(Command::Run(cfg)) => *cfg,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn configz_shows_the_runtime_in_use() {
        let builtin = configz(&config(&[
            "--hostname-override=node",
            "--root-dir=/tmp/k",
            "--runtime-root=/tmp/rt",
        ]));
        let shown = &builtin["kubeletconfig"];
        assert_eq!(
            shown["containerRuntimeEndpoint"],
            "unix:///tmp/k/runtime/cri.sock"
        );
        assert_eq!(
            shown["imageServiceEndpoint"],
            "unix:///tmp/k/runtime/cri.sock"
        );
        assert_eq!(shown["builtinRuntime"]["root"], "/tmp/rt");
        assert_eq!(shown["builtinRuntime"]["state"], "/run/kubelet-rs");

        let remote = configz(&config(&[
            "--hostname-override=node",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
        ]));
        let shown = &remote["kubeletconfig"];
        assert_eq!(
            shown["containerRuntimeEndpoint"],
            "unix:///run/containerd/containerd.sock"
        );
        assert!(shown.get("builtinRuntime").is_none(), "{shown}");
    }
}
