//! What the kubelet API server reads from the running kubelet.

use super::healthz::Health;
use super::read_only::pod_list;
use crate::pod_manager::PodManager;
use crate::status::StatusManager;
use k8s_openapi::api::core::v1::Pod;
use kubelet_config::KubeletConfig;
use kubelet_cri::Runtime;
use serde_json::json;
use std::sync::Arc;

pub struct View {
    pub node_name: String,
    pub pods: PodManager,
    pub status: Arc<StatusManager>,
    pub runtime: Arc<dyn Runtime>,
    pub health: Health,
    pub configz: serde_json::Value,
}

/// The resolved configuration in KubeletConfiguration (v1beta1) field names, as /configz shows it.
pub fn configz(cfg: &KubeletConfig) -> serde_json::Value {
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs());
    json!({"kubeletconfig": {
        "staticPodPath": cfg.static_pod_path,
        "staticPodURL": cfg.static_pod_url,
        "syncFrequency": secs(cfg.sync_frequency),
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
        "containerRuntimeEndpoint": cfg.container_runtime_endpoint,
        "imageServiceEndpoint": cfg.image_service_endpoint,
        "runtimeRequestTimeout": secs(cfg.runtime_request_timeout),
        "serializeImagePulls": cfg.serialize_image_pulls,
        "podLogsDir": cfg.pod_logs_dir,
        "containerLogMaxSize": cfg.container_log_max_size,
        "containerLogMaxFiles": cfg.container_log_max_files,
        "shutdownGracePeriod": secs(cfg.shutdown_grace_period),
        "shutdownGracePeriodCriticalPods": secs(cfg.shutdown_grace_period_critical_pods),
    }})
}

impl kubelet_server::KubeletView for View {
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
}
