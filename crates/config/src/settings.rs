//! The settings kubelet-rs implements, as raw values gathered from defaults, the config file
//! and flags (in that order), before validation turns them into a [`crate::KubeletConfig`].

use std::time::Duration;

use crate::value::{Kind, Value};

/// One implemented setting. A flag and a config file field may both feed the same setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Setting {
    Config,
    StaticPodPath,
    StaticPodUrl,
    StaticPodUrlHeader,
    FileCheckFrequency,
    HttpCheckFrequency,
    SyncFrequency,
    ContainerRuntimeEndpoint,
    ImageServiceEndpoint,
    RuntimeRequestTimeout,
    ShutdownGracePeriod,
    ShutdownGracePeriodCriticalPods,
    SerializeImagePulls,
    RootDir,
    PodLogsDir,
    ContainerLogsSymlinkDir,
    ContainerLogMaxSize,
    ContainerLogMaxFiles,
    HostnameOverride,
    NodeIp,
    ClusterDns,
    ClusterDomain,
    ResolvConf,
    MaxPods,
    CgroupDriver,
    CgroupRoot,
    CgroupsPerQos,
    EnforceNodeAllocatable,
    KubeReservedCgroup,
    SystemReservedCgroup,
    PodPidsLimit,
    CpuCfsQuota,
    CpuCfsQuotaPeriod,
    CpuManagerPolicy,
    CpuManagerPolicyOptions,
    CpuManagerReconcilePeriod,
    ReservedSystemCpus,
    MemoryManagerPolicy,
    TopologyManagerPolicy,
    HealthzPort,
    HealthzBindAddress,
    Address,
    ReadOnlyPort,
    Port,
    TlsCertFile,
    TlsPrivateKeyFile,
    TlsMinVersion,
    TlsCipherSuites,
    CertDir,
    ClientCaFile,
    AnonymousAuth,
    AuthorizationMode,
    RunOnce,
    Verbosity,
    LoggingFormat,
    Kubeconfig,
    BootstrapKubeconfig,
    KubeApiQps,
    KubeApiBurst,
    KubeApiContentType,
    RegisterNode,
    RegisterWithTaints,
    NodeLabels,
    EvictionHard,
    EvictionSoft,
    EvictionSoftGracePeriod,
    EvictionMaxPodGracePeriod,
    EvictionMinimumReclaim,
    EvictionPressureTransitionPeriod,
    KernelMemcgNotification,
    FeatureGates,
    MemoryThrottlingFactor,
    KubeReserved,
    SystemReserved,
    RotateCertificates,
    ServerTlsBootstrap,
    EventQps,
    EventBurst,
    AuthenticationWebhook,
    AuthenticationWebhookCacheTtl,
    AuthorizationWebhookCacheAuthorizedTtl,
    AuthorizationWebhookCacheUnauthorizedTtl,
    NodeStatusUpdateFrequency,
    NodeStatusReportFrequency,
    NodeLeaseDurationSeconds,
    ImageGcHighThresholdPercent,
    ImageGcLowThresholdPercent,
    ImageMinimumGcAge,
    ImageMaximumGcAge,
    MaximumDeadContainers,
    MaximumDeadContainersPerContainer,
    MinimumContainerTtlDuration,
    LocalPodSubmission,
    DevicePluginEndpointGracePeriod,
    VolumeStatsAggPeriod,
    RuntimeRoot,
    RuntimeState,
    CniConfDir,
    CniBinDir,
    RegistryConfig,
    StreamingAddress,
    StreamingConnectionIdleTimeout,
}

impl Setting {
    /// The syntax the setting takes; flag and file tables derive their kind from it.
    pub(crate) const fn kind(self) -> Kind {
        match self {
            Setting::Config
            | Setting::StaticPodPath
            | Setting::StaticPodUrl
            | Setting::ContainerRuntimeEndpoint
            | Setting::ImageServiceEndpoint
            | Setting::RootDir
            | Setting::PodLogsDir
            | Setting::ContainerLogsSymlinkDir
            | Setting::HostnameOverride
            | Setting::NodeIp
            | Setting::ClusterDomain
            | Setting::ResolvConf
            | Setting::CgroupDriver
            | Setting::CgroupRoot
            | Setting::HealthzBindAddress
            | Setting::Address
            | Setting::TlsCertFile
            | Setting::TlsPrivateKeyFile
            | Setting::TlsMinVersion
            | Setting::CertDir
            | Setting::ClientCaFile
            | Setting::AuthorizationMode
            | Setting::LoggingFormat
            | Setting::RuntimeRoot
            | Setting::RuntimeState
            | Setting::CniConfDir
            | Setting::RegistryConfig
            | Setting::StreamingAddress => Kind::Str,
            Setting::StaticPodUrlHeader => Kind::Headers,
            Setting::KubeReservedCgroup | Setting::SystemReservedCgroup => Kind::Str,
            Setting::EnforceNodeAllocatable => Kind::List,
            Setting::PodPidsLimit => Kind::Int,
            Setting::CpuCfsQuota => Kind::Bool,
            Setting::CpuCfsQuotaPeriod => Kind::Duration,
            Setting::CpuManagerPolicy
            | Setting::ReservedSystemCpus
            | Setting::MemoryManagerPolicy
            | Setting::TopologyManagerPolicy => Kind::Str,
            Setting::CpuManagerPolicyOptions => Kind::Map,
            Setting::FeatureGates => Kind::BoolMap,
            Setting::MemoryThrottlingFactor => Kind::Float,
            Setting::CpuManagerReconcilePeriod => Kind::Duration,
            Setting::FileCheckFrequency
            | Setting::HttpCheckFrequency
            | Setting::SyncFrequency
            | Setting::RuntimeRequestTimeout
            | Setting::StreamingConnectionIdleTimeout
            | Setting::ShutdownGracePeriod
            | Setting::ShutdownGracePeriodCriticalPods => Kind::Duration,
            Setting::SerializeImagePulls
            | Setting::CgroupsPerQos
            | Setting::RunOnce
            | Setting::AnonymousAuth => Kind::Bool,
            Setting::ContainerLogMaxSize => Kind::Quantity,
            Setting::ContainerLogMaxFiles
            | Setting::MaxPods
            | Setting::HealthzPort
            | Setting::ReadOnlyPort
            | Setting::Port
            | Setting::Verbosity => Kind::Int,
            Setting::ClusterDns | Setting::TlsCipherSuites | Setting::CniBinDir => Kind::List,
            Setting::Kubeconfig | Setting::BootstrapKubeconfig | Setting::KubeApiContentType => {
                Kind::Str
            }
            Setting::KubeApiQps
            | Setting::KubeApiBurst
            | Setting::EventQps
            | Setting::EventBurst
            | Setting::NodeLeaseDurationSeconds
            | Setting::ImageGcHighThresholdPercent
            | Setting::ImageGcLowThresholdPercent
            | Setting::MaximumDeadContainers
            | Setting::MaximumDeadContainersPerContainer => Kind::Int,
            Setting::RegisterNode
            | Setting::RotateCertificates
            | Setting::ServerTlsBootstrap
            | Setting::AuthenticationWebhook
            | Setting::LocalPodSubmission => Kind::Bool,
            Setting::RegisterWithTaints => Kind::Taints,
            Setting::NodeLabels | Setting::KubeReserved | Setting::SystemReserved => Kind::Map,
            Setting::EvictionHard | Setting::EvictionSoft => Kind::Thresholds,
            Setting::EvictionSoftGracePeriod | Setting::EvictionMinimumReclaim => Kind::Map,
            Setting::EvictionMaxPodGracePeriod => Kind::Int,
            Setting::EvictionPressureTransitionPeriod => Kind::Duration,
            Setting::KernelMemcgNotification => Kind::Bool,
            Setting::AuthenticationWebhookCacheTtl
            | Setting::AuthorizationWebhookCacheAuthorizedTtl
            | Setting::AuthorizationWebhookCacheUnauthorizedTtl
            | Setting::NodeStatusUpdateFrequency
            | Setting::NodeStatusReportFrequency
            | Setting::ImageMinimumGcAge
            | Setting::ImageMaximumGcAge
            | Setting::MinimumContainerTtlDuration
            | Setting::DevicePluginEndpointGracePeriod
            | Setting::VolumeStatsAggPeriod => Kind::Duration,
        }
    }
}

/// Raw values of every implemented setting. Strings stay as given; validation happens when
/// the final configuration is built, so its errors can name both the field and the flag.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub config: String,
    pub static_pod_path: String,
    pub static_pod_url: String,
    pub static_pod_url_header: Vec<(String, String)>,
    pub file_check_frequency: Duration,
    pub http_check_frequency: Duration,
    pub sync_frequency: Duration,
    pub container_runtime_endpoint: String,
    pub image_service_endpoint: String,
    pub runtime_request_timeout: Duration,
    pub shutdown_grace_period: Duration,
    pub shutdown_grace_period_critical_pods: Duration,
    pub serialize_image_pulls: bool,
    pub root_dir: String,
    pub pod_logs_dir: String,
    pub container_logs_symlink_dir: String,
    pub container_log_max_size: i128,
    pub container_log_max_files: i64,
    pub hostname_override: String,
    pub node_ip: String,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    pub resolv_conf: String,
    pub max_pods: i64,
    pub cgroup_driver: String,
    pub cgroup_root: String,
    pub cgroups_per_qos: bool,
    pub enforce_node_allocatable: Vec<String>,
    pub kube_reserved_cgroup: String,
    pub cpu_manager_policy: String,
    pub cpu_manager_policy_options: Vec<(String, String)>,
    pub cpu_manager_reconcile_period: Duration,
    pub reserved_system_cpus: String,
    pub memory_manager_policy: String,
    pub topology_manager_policy: String,
    pub system_reserved_cgroup: String,
    pub pod_pids_limit: i64,
    pub cpu_cfs_quota: bool,
    pub cpu_cfs_quota_period: Duration,
    /// Gate name and "true" or "false", in the order given: the file's, then the flag's.
    pub feature_gates: Vec<(String, String)>,
    pub memory_throttling_factor: f64,
    pub healthz_port: i64,
    pub healthz_bind_address: String,
    pub address: String,
    /// None until set: its default depends on whether a config file is used.
    pub read_only_port: Option<i64>,
    pub port: i64,
    pub tls_cert_file: String,
    pub tls_private_key_file: String,
    pub tls_min_version: String,
    pub tls_cipher_suites: Vec<String>,
    pub cert_dir: String,
    pub client_ca_file: String,
    /// None until set: its default depends on whether a config file is used.
    pub anonymous_auth: Option<bool>,
    /// None until set: its default depends on whether a config file is used.
    pub authorization_mode: Option<String>,
    pub run_once: bool,
    pub verbosity: i64,
    pub logging_format: String,
    pub kubeconfig: String,
    pub bootstrap_kubeconfig: String,
    pub kube_api_qps: i64,
    pub kube_api_burst: i64,
    pub kube_api_content_type: String,
    pub register_node: bool,
    pub register_with_taints: Vec<String>,
    pub node_labels: Vec<(String, String)>,
    pub eviction_hard: Vec<(String, String)>,
    pub eviction_soft: Vec<(String, String)>,
    pub eviction_soft_grace_period: Vec<(String, String)>,
    pub eviction_max_pod_grace_period: i64,
    pub eviction_minimum_reclaim: Vec<(String, String)>,
    pub eviction_pressure_transition_period: Duration,
    pub kernel_memcg_notification: bool,
    pub kube_reserved: Vec<(String, String)>,
    pub system_reserved: Vec<(String, String)>,
    pub rotate_certificates: bool,
    pub server_tls_bootstrap: bool,
    pub event_qps: i64,
    pub event_burst: i64,
    pub authentication_webhook: Option<bool>,
    pub authentication_webhook_cache_ttl: Duration,
    pub authorization_webhook_cache_authorized_ttl: Duration,
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
    pub node_status_update_frequency: Duration,
    pub node_status_report_frequency: Duration,
    pub node_lease_duration_seconds: i64,
    pub image_gc_high_threshold_percent: i64,
    pub image_gc_low_threshold_percent: i64,
    pub image_minimum_gc_age: Duration,
    pub image_maximum_gc_age: Duration,
    pub maximum_dead_containers: i64,
    pub maximum_dead_containers_per_container: i64,
    pub minimum_container_ttl_duration: Duration,
    pub local_pod_submission: bool,
    pub device_plugin_endpoint_grace_period: Duration,
    pub volume_stats_agg_period: Duration,
    pub runtime_root: String,
    pub runtime_state: String,
    pub cni_conf_dir: String,
    pub cni_bin_dir: Vec<String>,
    pub registry_config: String,
    pub streaming_address: String,
    pub streaming_connection_idle_timeout: Duration,
}

impl Settings {
    /// Stores a value. The value's variant always matches `setting.kind()` because both
    /// tables derive their kinds from the setting; a mismatch is reported, not ignored.
    pub(crate) fn set(&mut self, setting: Setting, value: Value) -> Result<(), String> {
        match (setting, value) {
            (Setting::Config, Value::Str(v)) => self.config = v,
            (Setting::StaticPodPath, Value::Str(v)) => self.static_pod_path = v,
            (Setting::StaticPodUrl, Value::Str(v)) => self.static_pod_url = v,
            (Setting::StaticPodUrlHeader, Value::Headers(v)) => self.static_pod_url_header = v,
            (Setting::FileCheckFrequency, Value::Duration(v)) => self.file_check_frequency = v,
            (Setting::HttpCheckFrequency, Value::Duration(v)) => self.http_check_frequency = v,
            (Setting::SyncFrequency, Value::Duration(v)) => self.sync_frequency = v,
            (Setting::ContainerRuntimeEndpoint, Value::Str(v)) => {
                self.container_runtime_endpoint = v
            }
            (Setting::ImageServiceEndpoint, Value::Str(v)) => self.image_service_endpoint = v,
            (Setting::ShutdownGracePeriod, Value::Duration(v)) => self.shutdown_grace_period = v,
            (Setting::ShutdownGracePeriodCriticalPods, Value::Duration(v)) => {
                self.shutdown_grace_period_critical_pods = v
            }
            (Setting::RuntimeRequestTimeout, Value::Duration(v)) => {
                self.runtime_request_timeout = v
            }
            (Setting::SerializeImagePulls, Value::Bool(v)) => self.serialize_image_pulls = v,
            (Setting::RootDir, Value::Str(v)) => self.root_dir = v,
            (Setting::PodLogsDir, Value::Str(v)) => self.pod_logs_dir = v,
            (Setting::ContainerLogsSymlinkDir, Value::Str(v)) => {
                self.container_logs_symlink_dir = v
            }
            (Setting::ContainerLogMaxSize, Value::Quantity(v)) => self.container_log_max_size = v,
            (Setting::ContainerLogMaxFiles, Value::Int(v)) => self.container_log_max_files = v,
            (Setting::HostnameOverride, Value::Str(v)) => self.hostname_override = v,
            (Setting::NodeIp, Value::Str(v)) => self.node_ip = v,
            (Setting::ClusterDns, Value::List(v)) => self.cluster_dns = v,
            (Setting::ClusterDomain, Value::Str(v)) => self.cluster_domain = v,
            (Setting::ResolvConf, Value::Str(v)) => self.resolv_conf = v,
            (Setting::MaxPods, Value::Int(v)) => self.max_pods = v,
            (Setting::CgroupDriver, Value::Str(v)) => self.cgroup_driver = v,
            (Setting::CgroupRoot, Value::Str(v)) => self.cgroup_root = v,
            (Setting::CgroupsPerQos, Value::Bool(v)) => self.cgroups_per_qos = v,
            (Setting::CpuManagerPolicy, Value::Str(v)) => self.cpu_manager_policy = v,
            (Setting::CpuManagerPolicyOptions, Value::Map(v)) => {
                self.cpu_manager_policy_options = v
            }
            (Setting::CpuManagerReconcilePeriod, Value::Duration(v)) => {
                self.cpu_manager_reconcile_period = v
            }
            (Setting::ReservedSystemCpus, Value::Str(v)) => self.reserved_system_cpus = v,
            (Setting::MemoryManagerPolicy, Value::Str(v)) => self.memory_manager_policy = v,
            (Setting::TopologyManagerPolicy, Value::Str(v)) => self.topology_manager_policy = v,
            (Setting::EnforceNodeAllocatable, Value::List(v)) => self.enforce_node_allocatable = v,
            (Setting::KubeReservedCgroup, Value::Str(v)) => self.kube_reserved_cgroup = v,
            (Setting::SystemReservedCgroup, Value::Str(v)) => self.system_reserved_cgroup = v,
            (Setting::PodPidsLimit, Value::Int(v)) => self.pod_pids_limit = v,
            (Setting::CpuCfsQuota, Value::Bool(v)) => self.cpu_cfs_quota = v,
            (Setting::CpuCfsQuotaPeriod, Value::Duration(v)) => self.cpu_cfs_quota_period = v,
            // Upstream merges the flag's gates into the file's, key by key.
            (Setting::FeatureGates, Value::Map(v)) => self.feature_gates.extend(v),
            (Setting::MemoryThrottlingFactor, Value::Float(v)) => self.memory_throttling_factor = v,
            (Setting::HealthzPort, Value::Int(v)) => self.healthz_port = v,
            (Setting::HealthzBindAddress, Value::Str(v)) => self.healthz_bind_address = v,
            (Setting::Address, Value::Str(v)) => self.address = v,
            (Setting::ReadOnlyPort, Value::Int(v)) => self.read_only_port = Some(v),
            (Setting::Port, Value::Int(v)) => self.port = v,
            (Setting::TlsCertFile, Value::Str(v)) => self.tls_cert_file = v,
            (Setting::TlsPrivateKeyFile, Value::Str(v)) => self.tls_private_key_file = v,
            (Setting::TlsMinVersion, Value::Str(v)) => self.tls_min_version = v,
            (Setting::TlsCipherSuites, Value::List(v)) => self.tls_cipher_suites = v,
            (Setting::CertDir, Value::Str(v)) => self.cert_dir = v,
            (Setting::ClientCaFile, Value::Str(v)) => self.client_ca_file = v,
            (Setting::AnonymousAuth, Value::Bool(v)) => self.anonymous_auth = Some(v),
            (Setting::AuthorizationMode, Value::Str(v)) => self.authorization_mode = Some(v),
            (Setting::RunOnce, Value::Bool(v)) => self.run_once = v,
            (Setting::Verbosity, Value::Int(v)) => self.verbosity = v,
            (Setting::LoggingFormat, Value::Str(v)) => self.logging_format = v,
            (Setting::Kubeconfig, Value::Str(v)) => self.kubeconfig = v,
            (Setting::BootstrapKubeconfig, Value::Str(v)) => self.bootstrap_kubeconfig = v,
            (Setting::KubeApiQps, Value::Int(v)) => self.kube_api_qps = v,
            (Setting::KubeApiBurst, Value::Int(v)) => self.kube_api_burst = v,
            (Setting::KubeApiContentType, Value::Str(v)) => self.kube_api_content_type = v,
            (Setting::RegisterNode, Value::Bool(v)) => self.register_node = v,
            (Setting::RegisterWithTaints, Value::List(v)) => self.register_with_taints = v,
            (Setting::NodeLabels, Value::Map(v)) => self.node_labels = v,
            (Setting::EvictionHard, Value::Map(v)) => self.eviction_hard = v,
            (Setting::EvictionSoft, Value::Map(v)) => self.eviction_soft = v,
            (Setting::EvictionSoftGracePeriod, Value::Map(v)) => {
                self.eviction_soft_grace_period = v
            }
            (Setting::EvictionMaxPodGracePeriod, Value::Int(v)) => {
                self.eviction_max_pod_grace_period = v
            }
            (Setting::EvictionMinimumReclaim, Value::Map(v)) => self.eviction_minimum_reclaim = v,
            (Setting::EvictionPressureTransitionPeriod, Value::Duration(v)) => {
                self.eviction_pressure_transition_period = v
            }
            (Setting::KernelMemcgNotification, Value::Bool(v)) => {
                self.kernel_memcg_notification = v
            }
            (Setting::KubeReserved, Value::Map(v)) => self.kube_reserved = v,
            (Setting::SystemReserved, Value::Map(v)) => self.system_reserved = v,
            (Setting::RotateCertificates, Value::Bool(v)) => self.rotate_certificates = v,
            (Setting::ServerTlsBootstrap, Value::Bool(v)) => self.server_tls_bootstrap = v,
            (Setting::EventQps, Value::Int(v)) => self.event_qps = v,
            (Setting::EventBurst, Value::Int(v)) => self.event_burst = v,
            (Setting::AuthenticationWebhook, Value::Bool(v)) => {
                self.authentication_webhook = Some(v)
            }
            (Setting::AuthenticationWebhookCacheTtl, Value::Duration(v)) => {
                self.authentication_webhook_cache_ttl = v
            }
            (Setting::AuthorizationWebhookCacheAuthorizedTtl, Value::Duration(v)) => {
                self.authorization_webhook_cache_authorized_ttl = v
            }
            (Setting::AuthorizationWebhookCacheUnauthorizedTtl, Value::Duration(v)) => {
                self.authorization_webhook_cache_unauthorized_ttl = v
            }
            (Setting::NodeStatusUpdateFrequency, Value::Duration(v)) => {
                self.node_status_update_frequency = v
            }
            (Setting::NodeStatusReportFrequency, Value::Duration(v)) => {
                self.node_status_report_frequency = v
            }
            (Setting::NodeLeaseDurationSeconds, Value::Int(v)) => {
                self.node_lease_duration_seconds = v
            }
            (Setting::ImageGcHighThresholdPercent, Value::Int(v)) => {
                self.image_gc_high_threshold_percent = v
            }
            (Setting::ImageGcLowThresholdPercent, Value::Int(v)) => {
                self.image_gc_low_threshold_percent = v
            }
            (Setting::ImageMinimumGcAge, Value::Duration(v)) => self.image_minimum_gc_age = v,
            (Setting::ImageMaximumGcAge, Value::Duration(v)) => self.image_maximum_gc_age = v,
            (Setting::MaximumDeadContainers, Value::Int(v)) => self.maximum_dead_containers = v,
            (Setting::MaximumDeadContainersPerContainer, Value::Int(v)) => {
                self.maximum_dead_containers_per_container = v
            }
            (Setting::MinimumContainerTtlDuration, Value::Duration(v)) => {
                self.minimum_container_ttl_duration = v
            }
            (Setting::LocalPodSubmission, Value::Bool(v)) => self.local_pod_submission = v,
            (Setting::DevicePluginEndpointGracePeriod, Value::Duration(v)) => {
                self.device_plugin_endpoint_grace_period = v
            }
            (Setting::VolumeStatsAggPeriod, Value::Duration(v)) => self.volume_stats_agg_period = v,
            (Setting::RuntimeRoot, Value::Str(v)) => self.runtime_root = v,
            (Setting::RuntimeState, Value::Str(v)) => self.runtime_state = v,
            (Setting::CniConfDir, Value::Str(v)) => self.cni_conf_dir = v,
            (Setting::CniBinDir, Value::List(v)) => self.cni_bin_dir = v,
            (Setting::RegistryConfig, Value::Str(v)) => self.registry_config = v,
            (Setting::StreamingAddress, Value::Str(v)) => self.streaming_address = v,
            (Setting::StreamingConnectionIdleTimeout, Value::Duration(v)) => {
                self.streaming_connection_idle_timeout = v
            }
            (setting, value) => {
                return Err(format!(
                    "internal error: setting {setting:?} cannot hold {value:?}"
                ));
            }
        }
        Ok(())
    }
}
