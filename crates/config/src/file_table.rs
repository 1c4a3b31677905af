//! Every field of the upstream KubeletConfiguration (kubelet.config.k8s.io/v1beta1, v1.32),
//! with its upstream default and whether kubelet-rs implements it.

use crate::settings::Setting;
use crate::value::Kind;

#[derive(Debug)]
pub(crate) struct FileField {
    pub name: &'static str,
    pub kind: Kind,
    /// Upstream's default (with a config file), in command-line syntax; empty for Go's zero.
    pub default: &'static str,
    /// Go pointer fields keep an explicit zero; other fields treat zero as "unset" and get the
    /// default instead (upstream's defaulting works on the zero value).
    pub pointer: bool,
    pub setting: Option<Setting>,
}

const fn field(name: &'static str, kind: Kind, default: &'static str) -> FileField {
    FileField {
        name,
        kind,
        default,
        pointer: false,
        setting: None,
    }
}

const fn pointer(name: &'static str, kind: Kind, default: &'static str) -> FileField {
    FileField {
        name,
        kind,
        default,
        pointer: true,
        setting: None,
    }
}

const fn done(name: &'static str, setting: Setting, default: &'static str) -> FileField {
    FileField {
        name,
        kind: setting.kind(),
        default,
        pointer: false,
        setting: Some(setting),
    }
}

const fn done_pointer(name: &'static str, setting: Setting, default: &'static str) -> FileField {
    FileField {
        name,
        kind: setting.kind(),
        default,
        pointer: true,
        setting: Some(setting),
    }
}

pub(crate) const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
pub(crate) const KIND: &str = "KubeletConfiguration";

/// The top-level fields, apart from apiVersion and kind.
#[rustfmt::skip]
pub(crate) static FIELDS: &[FileField] = &[
    pointer("enableServer", Kind::Bool, "true"),
    done("staticPodPath", Setting::StaticPodPath, ""),
    done("podLogsDir", Setting::PodLogsDir, "/var/log/pods"),
    done("syncFrequency", Setting::SyncFrequency, "1m"),
    done("fileCheckFrequency", Setting::FileCheckFrequency, "20s"),
    done("httpCheckFrequency", Setting::HttpCheckFrequency, "20s"),
    done("staticPodURL", Setting::StaticPodUrl, ""),
    done("staticPodURLHeader", Setting::StaticPodUrlHeader, ""),
    done("address", Setting::Address, "0.0.0.0"),
    done("port", Setting::Port, "10250"),
    done("readOnlyPort", Setting::ReadOnlyPort, ""),
    done("tlsCertFile", Setting::TlsCertFile, ""),
    done("tlsPrivateKeyFile", Setting::TlsPrivateKeyFile, ""),
    done("tlsCipherSuites", Setting::TlsCipherSuites, ""),
    done("tlsMinVersion", Setting::TlsMinVersion, ""),
    done("rotateCertificates", Setting::RotateCertificates, ""),
    done("serverTLSBootstrap", Setting::ServerTlsBootstrap, ""),
    field("authentication", Kind::Object(AUTHENTICATION), ""),
    field("authorization", Kind::Object(AUTHORIZATION), ""),
    pointer("registryPullQPS", Kind::Int, "5"),
    field("registryBurst", Kind::Int, "10"),
    done_pointer("eventRecordQPS", Setting::EventQps, "50"),
    done("eventBurst", Setting::EventBurst, "100"),
    pointer("enableDebuggingHandlers", Kind::Bool, "true"),
    field("enableContentionProfiling", Kind::Bool, ""),
    done_pointer("healthzPort", Setting::HealthzPort, "10248"),
    done("healthzBindAddress", Setting::HealthzBindAddress, "127.0.0.1"),
    pointer("oomScoreAdj", Kind::Int, "-999"),
    done("clusterDomain", Setting::ClusterDomain, ""),
    done("clusterDNS", Setting::ClusterDns, ""),
    done("streamingConnectionIdleTimeout", Setting::StreamingConnectionIdleTimeout, "4h"),
    done("nodeStatusUpdateFrequency", Setting::NodeStatusUpdateFrequency, "10s"),
    done("nodeStatusReportFrequency", Setting::NodeStatusReportFrequency, "5m"),
    done("nodeLeaseDurationSeconds", Setting::NodeLeaseDurationSeconds, "40"),
    done("imageMinimumGCAge", Setting::ImageMinimumGcAge, "2m"),
    done("imageMaximumGCAge", Setting::ImageMaximumGcAge, ""),
    done_pointer("imageGCHighThresholdPercent", Setting::ImageGcHighThresholdPercent, "85"),
    done_pointer("imageGCLowThresholdPercent", Setting::ImageGcLowThresholdPercent, "80"),
    done("volumeStatsAggPeriod", Setting::VolumeStatsAggPeriod, "1m"),
    field("kubeletCgroups", Kind::Str, ""),
    field("systemCgroups", Kind::Str, ""),
    done("cgroupRoot", Setting::CgroupRoot, ""),
    done_pointer("cgroupsPerQOS", Setting::CgroupsPerQos, "true"),
    done("cgroupDriver", Setting::CgroupDriver, "cgroupfs"),
    done("cpuManagerPolicy", Setting::CpuManagerPolicy, "none"),
    pointer("singleProcessOOMKill", Kind::Bool, ""),
    done("cpuManagerPolicyOptions", Setting::CpuManagerPolicyOptions, ""),
    done("cpuManagerReconcilePeriod", Setting::CpuManagerReconcilePeriod, "10s"),
    done("memoryManagerPolicy", Setting::MemoryManagerPolicy, "None"),
    done("topologyManagerPolicy", Setting::TopologyManagerPolicy, "none"),
    field("topologyManagerScope", Kind::Str, "container"),
    field("topologyManagerPolicyOptions", Kind::Map, ""),
    field("qosReserved", Kind::Map, ""),
    done("runtimeRequestTimeout", Setting::RuntimeRequestTimeout, "2m"),
    field("hairpinMode", Kind::Str, "promiscuous-bridge"),
    done("maxPods", Setting::MaxPods, "110"),
    field("podCIDR", Kind::Str, ""),
    done_pointer("podPidsLimit", Setting::PodPidsLimit, "-1"),
    done_pointer("resolvConf", Setting::ResolvConf, "/etc/resolv.conf"),
    done("runOnce", Setting::RunOnce, "false"),
    done_pointer("cpuCFSQuota", Setting::CpuCfsQuota, "true"),
    done_pointer("cpuCFSQuotaPeriod", Setting::CpuCfsQuotaPeriod, "100ms"),
    pointer("nodeStatusMaxImages", Kind::Int, "50"),
    field("maxOpenFiles", Kind::Int, "1000000"),
    done("contentType", Setting::KubeApiContentType, "application/vnd.kubernetes.protobuf"),
    done_pointer("kubeAPIQPS", Setting::KubeApiQps, "50"),
    done("kubeAPIBurst", Setting::KubeApiBurst, "100"),
    done_pointer("serializeImagePulls", Setting::SerializeImagePulls, "true"),
    pointer("maxParallelImagePulls", Kind::Int, ""),
    done_pointer("evictionHard", Setting::EvictionHard, "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%"),
    done("evictionSoft", Setting::EvictionSoft, ""),
    done("evictionSoftGracePeriod", Setting::EvictionSoftGracePeriod, ""),
    done("evictionPressureTransitionPeriod", Setting::EvictionPressureTransitionPeriod, "5m"),
    done("evictionMaxPodGracePeriod", Setting::EvictionMaxPodGracePeriod, ""),
    done("evictionMinimumReclaim", Setting::EvictionMinimumReclaim, ""),
    field("podsPerCore", Kind::Int, ""),
    pointer("enableControllerAttachDetach", Kind::Bool, "true"),
    field("protectKernelDefaults", Kind::Bool, ""),
    pointer("makeIPTablesUtilChains", Kind::Bool, "true"),
    pointer("iptablesMasqueradeBit", Kind::Int, "14"),
    pointer("iptablesDropBit", Kind::Int, "15"),
    done("featureGates", Setting::FeatureGates, ""),
    pointer("failSwapOn", Kind::Bool, "true"),
    field("memorySwap", Kind::Object(MEMORY_SWAP), ""),
    done("containerLogMaxSize", Setting::ContainerLogMaxSize, "10Mi"),
    done_pointer("containerLogMaxFiles", Setting::ContainerLogMaxFiles, "5"),
    pointer("containerLogMaxWorkers", Kind::Int, "1"),
    pointer("containerLogMonitorInterval", Kind::Duration, "10s"),
    field("configMapAndSecretChangeDetectionStrategy", Kind::Str, "Watch"),
    done("systemReserved", Setting::SystemReserved, ""),
    done("kubeReserved", Setting::KubeReserved, ""),
    done("reservedSystemCPUs", Setting::ReservedSystemCpus, ""),
    field("showHiddenMetricsForVersion", Kind::Str, ""),
    done("systemReservedCgroup", Setting::SystemReservedCgroup, ""),
    done("kubeReservedCgroup", Setting::KubeReservedCgroup, ""),
    done("enforceNodeAllocatable", Setting::EnforceNodeAllocatable, "pods"),
    field("allowedUnsafeSysctls", Kind::List, ""),
    field("volumePluginDir", Kind::Str, "/usr/libexec/kubernetes/kubelet-plugins/volume/exec/"),
    field("providerID", Kind::Str, ""),
    done("kernelMemcgNotification", Setting::KernelMemcgNotification, ""),
    field("logging", Kind::Object(LOGGING), ""),
    pointer("enableSystemLogHandler", Kind::Bool, "true"),
    pointer("enableSystemLogQuery", Kind::Bool, "false"),
    done("shutdownGracePeriod", Setting::ShutdownGracePeriod, "0s"),
    done("shutdownGracePeriodCriticalPods", Setting::ShutdownGracePeriodCriticalPods, "0s"),
    field("shutdownGracePeriodByPodPriority", Kind::Objects, ""),
    field("crashLoopBackOff", Kind::Object(CRASH_LOOP_BACK_OFF), ""),
    field("reservedMemory", Kind::Objects, ""),
    pointer("enableProfilingHandler", Kind::Bool, "true"),
    pointer("enableDebugFlagsHandler", Kind::Bool, "true"),
    pointer("seccompDefault", Kind::Bool, "false"),
    done_pointer("memoryThrottlingFactor", Setting::MemoryThrottlingFactor, "0.9"),
    done("registerWithTaints", Setting::RegisterWithTaints, ""),
    done_pointer("registerNode", Setting::RegisterNode, "true"),
    pointer("tracing", Kind::Object(TRACING), ""),
    pointer("localStorageCapacityIsolation", Kind::Bool, "true"),
    // kubelet-rs: unset runs the built-in runtime (upstream defaults to containerd's socket).
    done("containerRuntimeEndpoint", Setting::ContainerRuntimeEndpoint, ""),
    done("imageServiceEndpoint", Setting::ImageServiceEndpoint, ""),
    pointer("failCgroupV1", Kind::Bool, "false"),
    pointer("userNamespaces", Kind::Object(USER_NAMESPACES), ""),
    // kubelet-rs: POST/DELETE of pods on the kubelet API (upstream has no such endpoint).
    done("enableLocalPodSubmission", Setting::LocalPodSubmission, ""),
    // kubelet-rs: upstream's fixed 5-minute endpointStopGracePeriod, shortenable for tests.
    done(
        "devicePluginEndpointGracePeriod",
        Setting::DevicePluginEndpointGracePeriod,
        "5m",
    ),
];

static AUTHENTICATION: &[FileField] = &[
    field("x509", Kind::Object(X509_AUTHENTICATION), ""),
    field("webhook", Kind::Object(WEBHOOK_AUTHENTICATION), ""),
    field("anonymous", Kind::Object(ANONYMOUS_AUTHENTICATION), ""),
];

static X509_AUTHENTICATION: &[FileField] = &[done("clientCAFile", Setting::ClientCaFile, "")];

static WEBHOOK_AUTHENTICATION: &[FileField] = &[
    // No default here: it depends on whether a config file is used, and build() applies it.
    done_pointer("enabled", Setting::AuthenticationWebhook, ""),
    done("cacheTTL", Setting::AuthenticationWebhookCacheTtl, "2m"),
];

// No default here: it depends on whether a config file is used, and build() applies it.
static ANONYMOUS_AUTHENTICATION: &[FileField] =
    &[done_pointer("enabled", Setting::AnonymousAuth, "")];

static AUTHORIZATION: &[FileField] = &[
    // No default here: it depends on whether a config file is used, and build() applies it.
    done("mode", Setting::AuthorizationMode, ""),
    field("webhook", Kind::Object(WEBHOOK_AUTHORIZATION), ""),
];

static WEBHOOK_AUTHORIZATION: &[FileField] = &[
    done(
        "cacheAuthorizedTTL",
        Setting::AuthorizationWebhookCacheAuthorizedTtl,
        "5m",
    ),
    done(
        "cacheUnauthorizedTTL",
        Setting::AuthorizationWebhookCacheUnauthorizedTtl,
        "30s",
    ),
];

static MEMORY_SWAP: &[FileField] = &[field("swapBehavior", Kind::Str, "")];

static CRASH_LOOP_BACK_OFF: &[FileField] =
    &[pointer("maxContainerRestartPeriod", Kind::Duration, "")];

static USER_NAMESPACES: &[FileField] = &[pointer("idsPerPod", Kind::Int, "65536")];

static TRACING: &[FileField] = &[
    field("endpoint", Kind::Str, ""),
    pointer("samplingRatePerMillion", Kind::Int, ""),
];

/// k8s.io/component-base/logs/api/v1 LoggingConfiguration.
static LOGGING: &[FileField] = &[
    done("format", Setting::LoggingFormat, "text"),
    field("flushFrequency", Kind::DurationOrNanos, "5s"),
    done("verbosity", Setting::Verbosity, "0"),
    field("vmodule", Kind::Objects, ""),
    field("options", Kind::Object(LOGGING_OPTIONS), ""),
];

static LOGGING_OPTIONS: &[FileField] = &[
    field("json", Kind::Object(LOGGING_STREAM_OPTIONS), ""),
    field("text", Kind::Object(LOGGING_STREAM_OPTIONS), ""),
];

static LOGGING_STREAM_OPTIONS: &[FileField] = &[
    field("splitStream", Kind::Bool, ""),
    field("infoBufferSize", Kind::Quantity, ""),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flag_table::{FLAGS, Role};
    use crate::value::Value;

    fn implemented(fields: &'static [FileField], found: &mut Vec<(Setting, &'static str)>) {
        for field in fields {
            if let Some(setting) = field.setting {
                found.push((setting, field.default));
            }
            if let Kind::Object(nested) = field.kind {
                implemented(nested, found);
            }
        }
    }

    #[test]
    fn file_and_flag_defaults_agree() {
        let mut found = Vec::new();
        implemented(FIELDS, &mut found);
        for (setting, file_default) in found {
            let Some(flag) = FLAGS
                .iter()
                .find(|flag| matches!(flag.role, Role::Implemented(s) if s == setting))
            else {
                continue;
            };
            // A mode-dependent flag default is resolved when the result is built.
            if flag.config_default.is_some() {
                continue;
            }
            let kind = setting.kind();
            let from_flag = Value::from_text(kind, flag.default)
                .unwrap_or_else(|reason| panic!("default of --{}: {reason}", flag.name));
            assert!(
                from_flag.is_default(kind, file_default),
                "defaults of --{} and {setting:?} differ",
                flag.name
            );
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = FIELDS.iter().map(|field| field.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
    }
}
