//! The kubelet's configuration: upstream flags and the KubeletConfiguration file
//! (kubelet.config.k8s.io/v1beta1), merged with upstream precedence and defaults into one
//! resolved [`KubeletConfig`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved configuration the kubelet runs with. Every field is final: defaults applied,
/// file and flags merged, values validated.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The node name: --hostname-override, or the machine's hostname, lowercased.
    pub node_name: String,
    pub node_ips: Vec<IpAddr>,

    pub static_pod_path: Option<PathBuf>,
    pub static_pod_url: Option<String>,
    pub static_pod_url_headers: Vec<(String, String)>,
    pub file_check_frequency: Duration,
    pub http_check_frequency: Duration,
    pub sync_frequency: Duration,

    pub container_runtime_endpoint: String,
    pub image_service_endpoint: String,
    pub runtime_request_timeout: Duration,
    pub serialize_image_pulls: bool,

    pub root_dir: PathBuf,
    pub pod_logs_dir: PathBuf,
    /// Where the /var/log/containers symlinks go. Not an upstream option: tests point it elsewhere.
    pub container_logs_symlink_dir: PathBuf,
    pub container_log_max_size: u64,
    pub container_log_max_files: u32,

    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub resolv_conf: PathBuf,
    pub max_pods: u32,

    pub cgroup_driver: CgroupDriver,
    pub cgroup_root: String,
    pub cgroups_per_qos: bool,

    pub healthz_port: u16,
    pub healthz_bind_address: IpAddr,

    pub run_once: bool,
    pub verbosity: u8,
    pub logging_format: LogFormat,

    /// Warnings to log once logging is up (config fields parsed but not supported yet, ...).
    pub warnings: Vec<String>,
}
