//! Every command-line flag of the upstream kubelet v1.32 (cmd/kubelet/app/options: the
//! kubelet flags, the KubeletConfiguration flags, the logging flags and the global ones),
//! plus the kubelet-rs extensions (the log symlink dir and the built-in runtime's settings). A
//! flag we do not implement yet is still recognised, so using it is refused with a clear message
//! instead of "unknown flag".

use crate::builtin::{
    DEFAULT_CNI_BIN_DIRS, DEFAULT_CNI_CONF_DIR, DEFAULT_ROOT, DEFAULT_STATE,
    DEFAULT_STREAMING_ADDRESS,
};
use crate::settings::Setting;
use crate::value::Kind;

/// What a flag does in kubelet-rs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    Implemented(Setting),
    /// Recognised but not implemented: refused unless given its default value.
    NotYet,
    /// Accepted with a warning: what it controls upstream does not exist in kubelet-rs, for the
    /// reason given, so any value is harmless (kubeadm still writes such flags).
    NoEffect(&'static str),
    Help,
    Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deprecation {
    No,
    /// Upstream deprecates every flag that mirrors a config file field.
    UseConfigFile,
    /// Deprecated for another reason, given here.
    Other(&'static str),
}

#[derive(Debug)]
pub(crate) struct FlagSpec {
    pub name: &'static str,
    pub shorthand: Option<char>,
    pub kind: Kind,
    pub role: Role,
    /// Upstream's default, in command-line syntax; empty for Go's zero value.
    pub default: &'static str,
    /// The default when a config file is given, for the few flags whose flags-only default
    /// comes from upstream's legacy defaults (applyLegacyDefaults).
    pub config_default: Option<&'static str>,
    pub deprecation: Deprecation,
    pub usage: &'static str,
}

impl FlagSpec {
    /// The value a flag takes when given without `=value` (`--flag`), if it may be.
    pub(crate) fn value_when_bare(&self) -> Option<&'static str> {
        match (self.kind, self.role) {
            (Kind::Bool, _) | (_, Role::Version) => Some("true"),
            _ => None,
        }
    }

    /// The default that applies, depending on whether a config file is used.
    pub(crate) fn effective_default(&self, with_config_file: bool) -> &'static str {
        match self.config_default {
            Some(default) if with_config_file => default,
            _ => self.default,
        }
    }
}

use Deprecation::{No, UseConfigFile as Cfg};

const fn done(
    name: &'static str,
    setting: Setting,
    default: &'static str,
    deprecation: Deprecation,
    usage: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        shorthand: None,
        kind: setting.kind(),
        role: Role::Implemented(setting),
        default,
        config_default: None,
        deprecation,
        usage,
    }
}

const fn later(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    deprecation: Deprecation,
    usage: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        shorthand: None,
        kind,
        role: Role::NotYet,
        default,
        config_default: None,
        deprecation,
        usage,
    }
}

const REMOVAL: Deprecation = Deprecation::Other("will be removed in a future version");
const USE_EVICTION: Deprecation =
    Deprecation::Other("use --eviction-hard or --eviction-soft instead");

/// The flags, sorted by name as the help text lists them.
#[rustfmt::skip]
pub(crate) static FLAGS: &[FlagSpec] = &[
    done("address", Setting::Address, "0.0.0.0", Cfg, "IP address to serve the kubelet API and the read-only port on"),
    later("allowed-unsafe-sysctls", Kind::List, "", Cfg, "Unsafe sysctls or patterns (ending in *) pods may set"),
    FlagSpec { config_default: Some("false"), ..done("anonymous-auth", Setting::AnonymousAuth, "true", Cfg, "Allow anonymous requests to the kubelet server") },
    FlagSpec { config_default: Some("true"), ..done("authentication-token-webhook", Setting::AuthenticationWebhook, "false", Cfg, "Authenticate bearer tokens with the TokenReview API") },
    done("authentication-token-webhook-cache-ttl", Setting::AuthenticationWebhookCacheTtl, "2m0s", Cfg, "How long to cache token webhook responses"),
    FlagSpec { config_default: Some("Webhook"), ..done("authorization-mode", Setting::AuthorizationMode, "AlwaysAllow", Cfg, "Authorization mode of the kubelet server: AlwaysAllow or Webhook") },
    done("authorization-webhook-cache-authorized-ttl", Setting::AuthorizationWebhookCacheAuthorizedTtl, "5m0s", Cfg, "How long to cache 'authorized' webhook responses"),
    done("authorization-webhook-cache-unauthorized-ttl", Setting::AuthorizationWebhookCacheUnauthorizedTtl, "30s", Cfg, "How long to cache 'unauthorized' webhook responses"),
    done("bootstrap-kubeconfig", Setting::BootstrapKubeconfig, "", No, "Kubeconfig used to request a client certificate when --kubeconfig does not exist"),
    done("cert-dir", Setting::CertDir, "/var/lib/kubelet/pki", No, "Directory holding the kubelet's TLS certificates"),
    done("cgroup-driver", Setting::CgroupDriver, "cgroupfs", Cfg, "Cgroup driver: cgroupfs or systemd"),
    done("cgroup-root", Setting::CgroupRoot, "", Cfg, "Root cgroup for pods; empty means /"),
    done("cgroups-per-qos", Setting::CgroupsPerQos, "true", Cfg, "Create the QoS and pod cgroup hierarchy"),
    done("client-ca-file", Setting::ClientCaFile, "", Cfg, "CA bundle used to authenticate client certificates"),
    later("cloud-provider", Kind::Str, "", No, "Cloud provider: empty or external"),
    done("cluster-dns", Setting::ClusterDns, "", Cfg, "Comma-separated cluster DNS server IPs for ClusterFirst pods"),
    done("cluster-domain", Setting::ClusterDomain, "", Cfg, "Cluster DNS domain added to pods' search domains"),
    done("cni-bin-dir", Setting::CniBinDir, DEFAULT_CNI_BIN_DIRS, No, "kubelet-rs built-in runtime: directories of CNI plugin binaries, searched in order"),
    done("cni-conf-dir", Setting::CniConfDir, DEFAULT_CNI_CONF_DIR, No, "kubelet-rs built-in runtime: the first CNI conflist here sets up pod networks"),
    done("config", Setting::Config, "", No, "KubeletConfiguration file (YAML or JSON); flags override it"),
    later("config-dir", Kind::Str, "", No, "Directory of KubeletConfiguration drop-in files"),
    done("container-log-max-files", Setting::ContainerLogMaxFiles, "5", Cfg, "Maximum number of log files kept per container (>= 2)"),
    done("container-log-max-size", Setting::ContainerLogMaxSize, "10Mi", Cfg, "Size at which a container log file is rotated"),
    done("container-log-symlink-dir", Setting::ContainerLogsSymlinkDir, "/var/log/containers", No, "kubelet-rs extension for tests: directory of the container log symlinks"),
    done("container-runtime-endpoint", Setting::ContainerRuntimeEndpoint, "", Cfg, "CRI runtime service endpoint; unset (kubelet-rs, unlike upstream's containerd default) runs the built-in runtime in process"),
    later("contention-profiling", Kind::Bool, "false", Cfg, "Enable block profiling when profiling is enabled"),
    done("cpu-cfs-quota", Setting::CpuCfsQuota, "true", Cfg, "Enforce CPU CFS quota for containers with CPU limits"),
    done("cpu-cfs-quota-period", Setting::CpuCfsQuotaPeriod, "100ms", Cfg, "CPU CFS quota period"),
    done("cpu-manager-policy", Setting::CpuManagerPolicy, "none", Cfg, "CPU manager policy: none or static"),
    done("cpu-manager-policy-options", Setting::CpuManagerPolicyOptions, "", Cfg, "key=value options of the CPU manager policy"),
    done("cpu-manager-reconcile-period", Setting::CpuManagerReconcilePeriod, "10s", Cfg, "CPU manager reconciliation period"),
    later("enable-controller-attach-detach", Kind::Bool, "true", Cfg, "Let the attach/detach controller manage this node's volumes"),
    later("enable-debugging-handlers", Kind::Bool, "true", Cfg, "Serve logs, exec, attach and port-forward endpoints"),
    later("enable-server", Kind::Bool, "true", Cfg, "Enable the kubelet's server"),
    done("enforce-node-allocatable", Setting::EnforceNodeAllocatable, "pods", Cfg, "Node allocatable enforcement levels"),
    done("event-burst", Setting::EventBurst, "100", Cfg, "Burst of event creations"),
    done("event-qps", Setting::EventQps, "50", Cfg, "Event creations per second"),
    done("eviction-hard", Setting::EvictionHard, "imagefs.available<15%,imagefs.inodesFree<5%,memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%", Cfg, "Hard eviction thresholds, e.g. memory.available<1Gi"),
    done("eviction-max-pod-grace-period", Setting::EvictionMaxPodGracePeriod, "0", Cfg, "Maximum grace period for soft evictions, in seconds"),
    done("eviction-minimum-reclaim", Setting::EvictionMinimumReclaim, "", Cfg, "Minimum reclaims per eviction signal"),
    done("eviction-pressure-transition-period", Setting::EvictionPressureTransitionPeriod, "5m0s", Cfg, "Wait before leaving an eviction pressure condition"),
    done("eviction-soft", Setting::EvictionSoft, "", Cfg, "Soft eviction thresholds"),
    done("eviction-soft-grace-period", Setting::EvictionSoftGracePeriod, "", Cfg, "Grace periods of the soft eviction thresholds"),
    later("exit-on-lock-contention", Kind::Bool, "false", No, "Exit when another process contends for the lock file"),
    later("experimental-allocatable-ignore-eviction", Kind::Bool, "false", REMOVAL, "Ignore hard eviction thresholds in node allocatable"),
    later("experimental-mounter-path", Kind::Str, "", REMOVAL, "Path of the mounter binary"),
    later("fail-cgroupv1", Kind::Bool, "false", No, "Refuse to start on a cgroup v1 host"),
    later("fail-swap-on", Kind::Bool, "true", Cfg, "Refuse to start when swap is enabled"),
    done("feature-gates", Setting::FeatureGates, "", Cfg, "key=true|false pairs enabling feature gates (kubelet-rs acts on MemoryQoS)"),
    done("file-check-frequency", Setting::FileCheckFrequency, "20s", Cfg, "Interval between checks of the static pod path"),
    later("hairpin-mode", Kind::Str, "promiscuous-bridge", Cfg, "Hairpin NAT mode"),
    done("healthz-bind-address", Setting::HealthzBindAddress, "127.0.0.1", Cfg, "IP address of the healthz server"),
    done("healthz-port", Setting::HealthzPort, "10248", Cfg, "Port of the healthz server (0 disables it)"),
    FlagSpec { shorthand: Some('h'), role: Role::Help, ..later("help", Kind::Bool, "false", No, "Print this help and exit") },
    done("hostname-override", Setting::HostnameOverride, "", No, "Node name to use instead of the machine's hostname"),
    done("http-check-frequency", Setting::HttpCheckFrequency, "20s", Cfg, "Interval between fetches of the manifest URL"),
    later("image-credential-provider-bin-dir", Kind::Str, "", No, "Directory of credential provider plugins"),
    later("image-credential-provider-config", Kind::Str, "", No, "Credential provider plugin config file"),
    done("image-gc-high-threshold", Setting::ImageGcHighThresholdPercent, "85", Cfg, "Disk usage percent above which image GC always runs"),
    done("image-gc-low-threshold", Setting::ImageGcLowThresholdPercent, "80", Cfg, "Disk usage percent image GC frees down to"),
    done("image-service-endpoint", Setting::ImageServiceEndpoint, "", Cfg, "CRI image service endpoint; defaults to the runtime endpoint"),
    done("kernel-memcg-notification", Setting::KernelMemcgNotification, "false", Cfg, "Use kernel memcg notifications for memory eviction"),
    done("kube-api-burst", Setting::KubeApiBurst, "100", Cfg, "Burst of requests to the API server"),
    done("kube-api-content-type", Setting::KubeApiContentType, "application/vnd.kubernetes.protobuf", Cfg, "Content type of requests to the API server"),
    done("kube-api-qps", Setting::KubeApiQps, "50", Cfg, "Requests per second to the API server"),
    done("kube-reserved", Setting::KubeReserved, "", Cfg, "Resources reserved for Kubernetes components"),
    done("kube-reserved-cgroup", Setting::KubeReservedCgroup, "", Cfg, "Cgroup of the Kubernetes components"),
    done("kubeconfig", Setting::Kubeconfig, "", No, "Kubeconfig of the API server; omitted means standalone mode"),
    later("kubelet-cgroups", Kind::Str, "", Cfg, "Cgroup to run the kubelet in"),
    later("local-storage-capacity-isolation", Kind::Bool, "true", Cfg, "Enable local ephemeral storage isolation"),
    later("lock-file", Kind::Str, "", No, "Lock file of the kubelet"),
    later("log-flush-frequency", Kind::Duration, "5s", No, "Maximum time between log flushes"),
    later("log-json-info-buffer-size", Kind::Quantity, "0", Cfg, "Buffer size of info messages in split-stream JSON logging"),
    later("log-json-split-stream", Kind::Bool, "false", Cfg, "Write JSON errors to stderr and info to stdout"),
    later("log-text-info-buffer-size", Kind::Quantity, "0", Cfg, "Buffer size of info messages in split-stream text logging"),
    later("log-text-split-stream", Kind::Bool, "false", Cfg, "Write text errors to stderr and info to stdout"),
    done("logging-format", Setting::LoggingFormat, "text", Cfg, "Log format: text (klog's) or json (upstream's component-base schema)"),
    later("make-iptables-util-chains", Kind::Bool, "true", Cfg, "Create the iptables utility chains"),
    done("manifest-url", Setting::StaticPodUrl, "", Cfg, "URL to fetch static pods from"),
    done("manifest-url-header", Setting::StaticPodUrlHeader, "", Cfg, "Headers for --manifest-url as Key:Value pairs, comma separated, repeatable"),
    later("max-open-files", Kind::Int, "1000000", Cfg, "Maximum number of files the kubelet may open"),
    done("max-pods", Setting::MaxPods, "110", Cfg, "Maximum number of pods on this node"),
    done("maximum-dead-containers", Setting::MaximumDeadContainers, "-1", USE_EVICTION, "Dead containers kept in total"),
    done("maximum-dead-containers-per-container", Setting::MaximumDeadContainersPerContainer, "1", USE_EVICTION, "Dead containers kept per container"),
    done("memory-manager-policy", Setting::MemoryManagerPolicy, "None", Cfg, "Memory manager policy: None or Static"),
    done("minimum-container-ttl-duration", Setting::MinimumContainerTtlDuration, "0s", USE_EVICTION, "Minimum age of a finished container before GC"),
    done("minimum-image-ttl-duration", Setting::ImageMinimumGcAge, "2m0s", Cfg, "Minimum age of an unused image before GC"),
    done("node-ip", Setting::NodeIp, "", No, "Node IP address, or an IPv4,IPv6 pair"),
    done("node-labels", Setting::NodeLabels, "", No, "Labels added when registering the node"),
    later("node-status-max-images", Kind::Int, "50", Cfg, "Maximum images reported in the node status"),
    done("node-status-update-frequency", Setting::NodeStatusUpdateFrequency, "10s", Cfg, "Interval of node status computation"),
    later("oom-score-adj", Kind::Int, "-999", Cfg, "OOM score adjustment of the kubelet process"),
    later("pod-cidr", Kind::Str, "", Cfg, "Pod CIDR in standalone mode"),
    FlagSpec { role: Role::NoEffect("image garbage collection leaves alone the images the runtime pins, its sandbox image among them"), ..later("pod-infra-container-image", Kind::Str, "", Deprecation::Other("the image garbage collector gets the sandbox image from the CRI"), "Sandbox image exempt from image GC") },
    done("pod-manifest-path", Setting::StaticPodPath, "", Cfg, "Directory or file of static pods"),
    done("pod-max-pids", Setting::PodPidsLimit, "-1", Cfg, "Maximum processes per pod"),
    later("pods-per-core", Kind::Int, "0", Cfg, "Maximum pods per CPU core (0: no limit)"),
    done("port", Setting::Port, "10250", Cfg, "Port of the kubelet API"),
    later("protect-kernel-defaults", Kind::Bool, "false", Cfg, "Fail instead of tuning kernel settings"),
    later("provider-id", Kind::Str, "", No, "Unique identifier of the node for the cloud provider"),
    later("qos-reserved", Kind::Map, "", Cfg, "Percentages of resources reserved per QoS level"),
    FlagSpec { config_default: Some("0"), ..done("read-only-port", Setting::ReadOnlyPort, "10255", Cfg, "Unauthenticated read-only port (0 disables it)") },
    done("register-node", Setting::RegisterNode, "true", Cfg, "Register the node with the API server"),
    done("register-with-taints", Setting::RegisterWithTaints, "", Cfg, "Taints key=value:effect added when registering"),
    later("registry-burst", Kind::Int, "10", Cfg, "Burst of image pulls"),
    done("registry-config", Setting::RegistryConfig, "", No, "kubelet-rs built-in runtime: registry mirrors and insecure hosts, a containerd certs.d directory (HOST/hosts.toml)"),
    later("registry-qps", Kind::Int, "5", Cfg, "Image pulls per second (0: unlimited)"),
    done("reserved-cpus", Setting::ReservedSystemCpus, "", Cfg, "CPUs reserved for the system and Kubernetes"),
    later("reserved-memory", Kind::Str, "", Cfg, "Memory reservations per NUMA node"),
    done("resolv-conf", Setting::ResolvConf, "/etc/resolv.conf", Cfg, "Resolver config used as the base of pod DNS"),
    done("root-dir", Setting::RootDir, "/var/lib/kubelet", No, "Directory of the kubelet's files"),
    done("rotate-certificates", Setting::RotateCertificates, "false", Cfg, "Rotate the client certificate"),
    done("rotate-server-certificates", Setting::ServerTlsBootstrap, "false", Cfg, "Request and rotate the serving certificate"),
    done("runonce", Setting::RunOnce, "false", Cfg, "Start the static pods once and exit"),
    later("runtime-cgroups", Kind::Str, "", No, "Cgroup to run the container runtime in"),
    done("runtime-request-timeout", Setting::RuntimeRequestTimeout, "2m0s", Cfg, "Timeout of CRI requests except long-running ones"),
    done("runtime-root", Setting::RuntimeRoot, DEFAULT_ROOT, No, "kubelet-rs built-in runtime: persistent files (images, records, writable layers)"),
    done("runtime-state", Setting::RuntimeState, DEFAULT_STATE, No, "kubelet-rs built-in runtime: files gone at reboot (monitors, pinned namespaces)"),
    later("seccomp-default", Kind::Bool, "false", No, "Use RuntimeDefault as the default seccomp profile"),
    done("serialize-image-pulls", Setting::SerializeImagePulls, "true", Cfg, "Pull images one at a time"),
    done("streaming-address", Setting::StreamingAddress, DEFAULT_STREAMING_ADDRESS, No, "kubelet-rs built-in runtime: IP:PORT of the streaming server behind exec, attach and port-forward (port 0: any free one)"),
    done("streaming-connection-idle-timeout", Setting::StreamingConnectionIdleTimeout, "4h0m0s", Cfg, "Idle timeout of streaming connections"),
    done("sync-frequency", Setting::SyncFrequency, "1m0s", Cfg, "Maximum interval between pod syncs"),
    later("system-cgroups", Kind::Str, "", Cfg, "Cgroup for non-kernel processes outside a cgroup"),
    done("system-reserved", Setting::SystemReserved, "", Cfg, "Resources reserved for system daemons"),
    done("system-reserved-cgroup", Setting::SystemReservedCgroup, "", Cfg, "Cgroup of the system daemons"),
    done("tls-cert-file", Setting::TlsCertFile, "", Cfg, "Serving certificate file"),
    done("tls-cipher-suites", Setting::TlsCipherSuites, "", Cfg, "Allowed TLS cipher suites"),
    done("tls-min-version", Setting::TlsMinVersion, "", Cfg, "Minimum TLS version"),
    done("tls-private-key-file", Setting::TlsPrivateKeyFile, "", Cfg, "Serving private key file"),
    done("topology-manager-policy", Setting::TopologyManagerPolicy, "none", Cfg, "Topology manager policy"),
    later("topology-manager-policy-options", Kind::Map, "", Cfg, "key=value options of the topology manager policy"),
    later("topology-manager-scope", Kind::Str, "container", Cfg, "Topology manager scope: container or pod"),
    FlagSpec { shorthand: Some('v'), ..done("v", Setting::Verbosity, "0", No, "Log verbosity: 0 info, warnings and errors; 2 (recommended on nodes) adds debug events; 4 and up add trace events") },
    FlagSpec { role: Role::Version, ..later("version", Kind::Str, "", No, "Print version information and exit (--version or --version=raw)") },
    later("vmodule", Kind::Str, "", No, "pattern=N settings for file-filtered logging"),
    later("volume-plugin-dir", Kind::Str, "/usr/libexec/kubernetes/kubelet-plugins/volume/exec/", Cfg, "Directory of third-party volume plugins"),
    done("volume-stats-agg-period", Setting::VolumeStatsAggPeriod, "1m0s", Cfg, "Interval of pod volume stats computation (0 disables it)"),
];

/// Finds a flag by long name; like upstream, `_` and `-` are interchangeable.
pub(crate) fn by_name(name: &str) -> Option<&'static FlagSpec> {
    let normalized = name.replace('_', "-");
    FLAGS.iter().find(|flag| flag.name == normalized)
}

pub(crate) fn by_shorthand(shorthand: char) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|flag| flag.shorthand == Some(shorthand))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn names_are_sorted_and_unique() {
        for pair in FLAGS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn every_default_parses_with_its_kind() {
        for flag in FLAGS {
            for default in [flag.default].into_iter().chain(flag.config_default) {
                if !default.is_empty() && !matches!(flag.role, Role::Version) {
                    assert!(
                        Value::from_text(flag.kind, default).is_ok(),
                        "default {default:?} of --{} does not parse",
                        flag.name
                    );
                }
            }
        }
    }

    #[test]
    fn lookup_normalizes_underscores() {
        assert_eq!(by_name("max_pods").map(|flag| flag.name), Some("max-pods"));
        assert_eq!(by_shorthand('v').map(|flag| flag.name), Some("v"));
        assert!(by_name("no-such-flag").is_none());
    }
}
