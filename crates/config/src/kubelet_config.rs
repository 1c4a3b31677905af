//! The resolved configuration other crates consume.

use crate::builtin::{BuiltinRuntimeConfig, SOCKET_UNDER_ROOT_DIR};
use std::collections::BTreeMap;
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

/// How the kubelet server authorizes requests (authorization.mode / --authorization-mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    AlwaysAllow,
    Webhook,
}

/// The container runtime, from containerRuntimeEndpoint and imageServiceEndpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerRuntime {
    /// A CRI runtime over gRPC: containerd, CRI-O, or the built-in one served alone.
    Remote {
        endpoint: String,
        /// imageServiceEndpoint, or the runtime's endpoint when unset.
        image_endpoint: String,
    },
    /// Neither endpoint set: the built-in runtime in the kubelet's process. A departure from
    /// upstream, whose default is containerd's socket.
    Builtin,
}

/// When image garbage collection frees space and which images it may take (upstream's
/// ImageGCPolicy).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageGcPolicy {
    /// Image filesystem usage, in percent, at or above which images are removed; 100 turns image
    /// garbage collection off.
    pub high_threshold_percent: u8,
    /// The usage, in percent, that a collection frees down to.
    pub low_threshold_percent: u8,
    /// An unused image younger than this (since first seen) is kept.
    pub min_age: Duration,
    /// An image unused for longer than this is removed whatever the disk usage; None is off.
    pub max_age: Option<Duration>,
}

/// A taint given by --register-with-taints or registerWithTaints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaintSpec {
    pub key: String,
    pub value: String,
    pub effect: String,
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

    /// The CRI runtime the kubelet drives.
    pub container_runtime: ContainerRuntime,
    /// The built-in runtime's settings, used when `container_runtime` is
    /// [`ContainerRuntime::Builtin`].
    pub builtin_runtime: BuiltinRuntimeConfig,
    pub runtime_request_timeout: Duration,
    /// Graceful node shutdown (shutdownGracePeriod, shutdownGracePeriodCriticalPods); 0 is off.
    pub shutdown_grace_period: Duration,
    pub shutdown_grace_period_critical_pods: Duration,
    pub serialize_image_pulls: bool,

    pub root_dir: PathBuf,
    pub pod_logs_dir: PathBuf,
    /// Where the /var/log/containers symlinks go. Not an upstream option: tests point it elsewhere.
    pub container_logs_symlink_dir: PathBuf,
    pub container_log_max_size: u64,
    pub container_log_max_files: u32,

    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// Empty when resolvConf is set to "": pods then get no host DNS configuration.
    pub resolv_conf: PathBuf,
    pub max_pods: u32,

    pub cgroup_driver: CgroupDriver,
    pub cgroup_root: String,
    pub cgroups_per_qos: bool,
    pub cpu_manager: crate::cpu_manager::CpuManagerConfig,
    /// --enforce-node-allocatable: of "pods", "kube-reserved", "system-reserved"; empty (or
    /// "none") enforces nothing.
    pub enforce_node_allocatable: Vec<String>,
    pub kube_reserved_cgroup: String,
    pub system_reserved_cgroup: String,
    /// --pod-max-pids (podPidsLimit): processes per pod; 0 or less is no limit.
    pub pod_pids_limit: i64,
    /// --cpu-cfs-quota: CPU limits become CFS quotas.
    pub cpu_cfs_quota: bool,
    /// --cpu-cfs-quota-period.
    pub cpu_cfs_quota_period: Duration,
    pub feature_gates: crate::FeatureGates,
    /// memoryThrottlingFactor, in (0, 1]: where memory.high sits between a container's
    /// memory request and its limit under MemoryQoS.
    pub memory_throttling_factor: f64,

    pub healthz_port: u16,
    pub healthz_bind_address: IpAddr,

    pub run_once: bool,
    pub verbosity: u8,
    pub logging_format: LogFormat,

    /// The --config file, when one was given.
    pub config_file: Option<PathBuf>,
    /// Some defaults below differ between a flags-only start (upstream's legacy defaults)
    /// and a start with a config file.
    /// readOnlyPort: 10255 flags-only, 0 (disabled) with a config file.
    pub read_only_port: u16,
    /// The address the kubelet API and the read-only port listen on.
    pub address: IpAddr,
    /// The HTTPS port of the kubelet API (port / --port).
    pub port: u16,
    /// The serving certificate and key; both set or both unset. Unset: a self-signed pair is
    /// generated under `cert_dir`.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// Upstream's version name (VersionTLS12, ...); None keeps the TLS library's minimum.
    pub tls_min_version: Option<String>,
    /// Upstream's (Go) cipher suite names; empty keeps the TLS library's defaults.
    pub tls_cipher_suites: Vec<String>,
    /// --cert-dir: where the self-signed serving certificate goes.
    pub cert_dir: PathBuf,
    /// authentication.x509.clientCAFile: client certificates signed by it authenticate.
    pub client_ca_file: Option<PathBuf>,
    /// authentication.anonymous.enabled: true flags-only, false with a config file.
    pub anonymous_auth: bool,
    /// authentication.webhook.enabled: false flags-only, true with a config file.
    pub authentication_webhook: bool,
    pub authentication_webhook_cache_ttl: Duration,
    /// authorization.mode: AlwaysAllow flags-only, Webhook with a config file.
    pub authorization_mode: AuthorizationMode,
    pub authorization_webhook_cache_authorized_ttl: Duration,
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
    /// enableLocalPodSubmission (ours): POST and DELETE of pods on the kubelet API.
    pub local_pod_submission: bool,
    /// devicePluginEndpointGracePeriod (ours): how long a dead device plugin's devices stay
    /// in the node's capacity (upstream's fixed 5 minutes).
    pub device_plugin_endpoint_grace_period: Duration,
    /// volumeStatsAggPeriod (--volume-stats-agg-period): how often the CSI volumes' figures
    /// are asked of their drivers for /stats/summary and /metrics; zero disables it.
    pub volume_stats_agg_period: Duration,

    /// --kubeconfig; None is standalone mode.
    pub kubeconfig: Option<PathBuf>,
    pub bootstrap_kubeconfig: Option<PathBuf>,
    pub kube_api_qps: u32,
    pub kube_api_burst: u32,
    pub kube_api_content_type: String,
    pub event_qps: u32,
    pub event_burst: u32,
    pub register_node: bool,
    pub register_with_taints: Vec<TaintSpec>,
    pub node_labels: BTreeMap<String, String>,
    /// Hard eviction thresholds by signal: `memory.available` -> `100Mi` or `10%`.
    pub eviction_hard: BTreeMap<String, String>,
    /// Soft eviction thresholds, each with its grace period in `eviction_soft_grace_period`.
    pub eviction_soft: BTreeMap<String, String>,
    pub eviction_soft_grace_period: BTreeMap<String, Duration>,
    /// The longest grace period a soft eviction gives a pod, in seconds.
    pub eviction_max_pod_grace_period: i64,
    /// What an eviction must reclaim beyond its threshold, by signal: `500Mi` or `5%`.
    pub eviction_minimum_reclaim: BTreeMap<String, String>,
    /// How long a pressure condition is held after its signal clears.
    pub eviction_pressure_transition_period: Duration,
    /// Memory eviction also woken by the kernel's memcg threshold notifications.
    pub kernel_memcg_notification: bool,
    pub kube_reserved: BTreeMap<String, String>,
    pub system_reserved: BTreeMap<String, String>,
    pub rotate_certificates: bool,
    pub server_tls_bootstrap: bool,
    pub node_status_update_frequency: Duration,
    pub node_status_report_frequency: Duration,
    pub node_lease_duration_seconds: u32,
    pub image_gc: ImageGcPolicy,
    /// Dead containers kept on the node (--maximum-dead-containers); negative is no limit.
    pub maximum_dead_containers: i32,
    /// Dead instances kept per container (--maximum-dead-containers-per-container); negative
    /// keeps all.
    pub maximum_dead_containers_per_container: i32,
    /// A dead container younger than this is kept (--minimum-container-ttl-duration).
    pub minimum_container_ttl_duration: Duration,

    /// Warnings to log once logging is up (config fields parsed but not supported yet, ...).
    pub warnings: Vec<String>,
}

impl KubeletConfig {
    /// The socket the embedded built-in runtime is also served on: ROOT_DIR/runtime/cri.sock.
    pub fn builtin_runtime_socket(&self) -> PathBuf {
        self.root_dir.join(SOCKET_UNDER_ROOT_DIR)
    }
}
