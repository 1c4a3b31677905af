//! Turns merged settings into the final [`KubeletConfig`], validating like upstream's
//! ValidateKubeletConfiguration where it applies. Errors name the field and the flag.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::builtin::{BuiltinRuntimeConfig, streaming_address};
use crate::error::ConfigError;
use crate::host::{Host, SYSTEMD_MARKER};
use crate::kubelet_config::{
    AuthorizationMode, CgroupDriver, ContainerRuntime, ImageGcPolicy, KubeletConfig, LogFormat,
    TaintSpec,
};
use crate::paths::clean;
use crate::settings::Settings;
use crate::value::parse_taint;
use std::collections::BTreeMap;

pub(crate) fn build(
    settings: Settings,
    mut warnings: Vec<String>,
    host: &dyn Host,
) -> Result<KubeletConfig, ConfigError> {
    let s = settings;
    let feature_gates = crate::feature_gates::resolve(&s.feature_gates, &mut warnings);
    if !(s.memory_throttling_factor > 0.0 && s.memory_throttling_factor <= 1.0) {
        return Err(invalid(
            "memoryThrottlingFactor",
            format!(
                "{} must be greater than 0 and less than or equal to 1.0",
                s.memory_throttling_factor
            ),
        ));
    }
    let with_config_file = !s.config.is_empty();
    for (duration, setting) in [
        (
            s.file_check_frequency,
            "fileCheckFrequency (--file-check-frequency)",
        ),
        (
            s.http_check_frequency,
            "httpCheckFrequency (--http-check-frequency)",
        ),
        (s.sync_frequency, "syncFrequency (--sync-frequency)"),
        (
            s.runtime_request_timeout,
            "runtimeRequestTimeout (--runtime-request-timeout)",
        ),
    ] {
        positive(duration, setting)?;
    }
    if s.tls_cert_file.is_empty() != s.tls_private_key_file.is_empty() {
        return Err(invalid(
            "tlsCertFile (--tls-cert-file), tlsPrivateKeyFile (--tls-private-key-file)",
            "must be set together",
        ));
    }
    let image_gc = image_gc(&s)?;
    let cpu_manager = crate::cpu_manager::cpu_manager(&s)?;
    let container_runtime =
        container_runtime(s.container_runtime_endpoint, s.image_service_endpoint)?;
    Ok(KubeletConfig {
        node_name: node_name(&s.hostname_override, host)?,
        node_ips: node_ips(&s.node_ip)?,
        static_pod_path: non_empty(s.static_pod_path).map(PathBuf::from),
        static_pod_url: non_empty(s.static_pod_url),
        static_pod_url_headers: s.static_pod_url_header,
        file_check_frequency: s.file_check_frequency,
        http_check_frequency: s.http_check_frequency,
        sync_frequency: s.sync_frequency,
        container_runtime,
        builtin_runtime: BuiltinRuntimeConfig::new(
            s.runtime_root,
            s.runtime_state,
            s.cni_conf_dir,
            &s.cni_bin_dir,
            s.registry_config,
            streaming_address(&s.streaming_address)?,
            s.streaming_connection_idle_timeout,
        ),
        runtime_request_timeout: s.runtime_request_timeout,
        shutdown_grace_period: s.shutdown_grace_period,
        shutdown_grace_period_critical_pods: s.shutdown_grace_period_critical_pods,
        serialize_image_pulls: s.serialize_image_pulls,
        root_dir: PathBuf::from(s.root_dir),
        pod_logs_dir: pod_logs_dir(s.pod_logs_dir)?,
        container_logs_symlink_dir: PathBuf::from(s.container_logs_symlink_dir),
        container_log_max_size: u64::try_from(s.container_log_max_size)
            .ok()
            .filter(|size| *size > 0)
            .ok_or_else(|| {
                invalid(
                    "containerLogMaxSize (--container-log-max-size)",
                    format!("{} must be greater than zero", s.container_log_max_size),
                )
            })?,
        container_log_max_files: u32::try_from(s.container_log_max_files)
            .ok()
            .filter(|files| *files >= 2)
            .ok_or_else(|| {
                invalid(
                    "containerLogMaxFiles (--container-log-max-files)",
                    format!(
                        "{} must be greater than or equal to 2",
                        s.container_log_max_files
                    ),
                )
            })?,
        cluster_dns: s
            .cluster_dns
            .iter()
            .map(|ip| {
                ip.parse().map_err(|_| {
                    invalid(
                        "clusterDNS (--cluster-dns)",
                        format!("{ip:?} is not a valid IP address"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        cluster_domain: s.cluster_domain,
        resolv_conf: PathBuf::from(s.resolv_conf),
        max_pods: u32::try_from(s.max_pods).map_err(|_| {
            invalid(
                "maxPods (--max-pods)",
                format!("{} must be between 0 and {}", s.max_pods, u32::MAX),
            )
        })?,
        cgroup_driver: cgroup_driver(&s.cgroup_driver, host)?,
        cgroup_root: if s.cgroup_root.is_empty() {
            "/".to_string()
        } else {
            s.cgroup_root
        },
        cgroups_per_qos: s.cgroups_per_qos,
        cpu_manager,
        enforce_node_allocatable: enforce_node_allocatable(
            &s.enforce_node_allocatable,
            s.cgroups_per_qos,
            &s.kube_reserved_cgroup,
            &s.system_reserved_cgroup,
        )?,
        kube_reserved_cgroup: s.kube_reserved_cgroup.clone(),
        system_reserved_cgroup: s.system_reserved_cgroup.clone(),
        pod_pids_limit: s.pod_pids_limit,
        cpu_cfs_quota: s.cpu_cfs_quota,
        cpu_cfs_quota_period: cpu_cfs_quota_period(s.cpu_cfs_quota_period)?,
        feature_gates,
        memory_throttling_factor: s.memory_throttling_factor,
        healthz_port: u16::try_from(s.healthz_port).map_err(|_| {
            invalid(
                "healthzPort (--healthz-port)",
                format!(
                    "{} must be between 1 and 65535, inclusive (0 disables it)",
                    s.healthz_port
                ),
            )
        })?,
        healthz_bind_address: s.healthz_bind_address.parse().map_err(|_| {
            invalid(
                "healthzBindAddress (--healthz-bind-address)",
                format!("{:?} is not a valid IP address", s.healthz_bind_address),
            )
        })?,
        run_once: s.run_once,
        verbosity: u8::try_from(s.verbosity).map_err(|_| {
            invalid(
                "logging.verbosity (-v)",
                format!("{} must be between 0 and 255", s.verbosity),
            )
        })?,
        logging_format: match s.logging_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "logging.format (--logging-format)",
                    format!("{other:?} is not a supported format, use \"text\" or \"json\""),
                ));
            }
        },
        address: s.address.parse().map_err(|_| {
            invalid(
                "address (--address)",
                format!("{:?} is not a valid IP address", s.address),
            )
        })?,
        read_only_port: u16::try_from(s.read_only_port.unwrap_or(if with_config_file {
            0
        } else {
            10255
        }))
        .map_err(|_| {
            invalid(
                "readOnlyPort (--read-only-port)",
                "must be between 0 and 65535, inclusive (0 disables it)",
            )
        })?,
        port: u16::try_from(s.port)
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| {
                invalid(
                    "port (--port)",
                    format!("{} must be between 1 and 65535, inclusive", s.port),
                )
            })?,
        tls_cert_file: non_empty(s.tls_cert_file).map(PathBuf::from),
        tls_private_key_file: non_empty(s.tls_private_key_file).map(PathBuf::from),
        tls_min_version: tls_min_version(s.tls_min_version, &s.tls_cipher_suites)?,
        tls_cipher_suites: s.tls_cipher_suites,
        cert_dir: PathBuf::from(s.cert_dir),
        client_ca_file: non_empty(s.client_ca_file).map(PathBuf::from),
        anonymous_auth: s.anonymous_auth.unwrap_or(!with_config_file),
        authentication_webhook: s.authentication_webhook.unwrap_or(with_config_file),
        authentication_webhook_cache_ttl: s.authentication_webhook_cache_ttl,
        authorization_webhook_cache_authorized_ttl: s.authorization_webhook_cache_authorized_ttl,
        authorization_webhook_cache_unauthorized_ttl: s
            .authorization_webhook_cache_unauthorized_ttl,
        local_pod_submission: s.local_pod_submission,
        device_plugin_endpoint_grace_period: s.device_plugin_endpoint_grace_period,
        volume_stats_agg_period: s.volume_stats_agg_period,
        kubeconfig: non_empty(s.kubeconfig).map(PathBuf::from),
        bootstrap_kubeconfig: non_empty(s.bootstrap_kubeconfig).map(PathBuf::from),
        kube_api_qps: non_negative(s.kube_api_qps, "kubeAPIQPS (--kube-api-qps)")?,
        kube_api_burst: non_negative(s.kube_api_burst, "kubeAPIBurst (--kube-api-burst)")?,
        kube_api_content_type: s.kube_api_content_type,
        event_qps: non_negative(s.event_qps, "eventRecordQPS (--event-qps)")?,
        event_burst: non_negative(s.event_burst, "eventBurst (--event-burst)")?,
        register_node: s.register_node,
        register_with_taints: taints(&s.register_with_taints)?,
        node_labels: node_labels(s.node_labels)?,
        eviction_hard: eviction_thresholds(s.eviction_hard, "evictionHard (--eviction-hard)")?,
        eviction_soft_grace_period: eviction_grace_periods(
            s.eviction_soft_grace_period,
            &s.eviction_soft,
        )?,
        eviction_soft: eviction_thresholds(s.eviction_soft, "evictionSoft (--eviction-soft)")?,
        eviction_max_pod_grace_period: s.eviction_max_pod_grace_period,
        eviction_minimum_reclaim: eviction_minimum_reclaim(s.eviction_minimum_reclaim)?,
        eviction_pressure_transition_period: s.eviction_pressure_transition_period,
        kernel_memcg_notification: s.kernel_memcg_notification,
        kube_reserved: s.kube_reserved.into_iter().collect(),
        system_reserved: s.system_reserved.into_iter().collect(),
        rotate_certificates: s.rotate_certificates,
        server_tls_bootstrap: s.server_tls_bootstrap,
        image_gc,
        maximum_dead_containers: dead_count(
            s.maximum_dead_containers,
            "--maximum-dead-containers",
        )?,
        maximum_dead_containers_per_container: dead_count(
            s.maximum_dead_containers_per_container,
            "--maximum-dead-containers-per-container",
        )?,
        minimum_container_ttl_duration: s.minimum_container_ttl_duration,
        node_status_update_frequency: s.node_status_update_frequency,
        node_status_report_frequency: s.node_status_report_frequency,
        node_lease_duration_seconds: non_negative(
            s.node_lease_duration_seconds,
            "nodeLeaseDurationSeconds",
        )?,
        authorization_mode: authorization_mode(s.authorization_mode, with_config_file)?,
        config_file: non_empty(s.config).map(PathBuf::from),
        warnings,
    })
}

/// An endpoint selects a remote runtime; none, the built-in one. The image service of the
/// built-in runtime is its own, so an image endpoint alone is refused rather than ignored.
fn container_runtime(
    endpoint: String,
    image_endpoint: String,
) -> Result<ContainerRuntime, ConfigError> {
    match (endpoint.is_empty(), image_endpoint.is_empty()) {
        (true, true) => Ok(ContainerRuntime::Builtin),
        (true, false) => Err(invalid(
            "imageServiceEndpoint (--image-service-endpoint)",
            "needs containerRuntimeEndpoint (--container-runtime-endpoint): the built-in runtime serves its own images",
        )),
        (false, true) => Ok(ContainerRuntime::Remote {
            image_endpoint: endpoint.clone(),
            endpoint,
        }),
        (false, false) => Ok(ContainerRuntime::Remote {
            endpoint,
            image_endpoint,
        }),
    }
}

fn non_negative(value: i64, setting: &str) -> Result<u32, ConfigError> {
    u32::try_from(value).map_err(|_| invalid(setting, format!("{value} must be >= 0")))
}

fn taints(items: &[String]) -> Result<Vec<TaintSpec>, ConfigError> {
    items
        .iter()
        .map(|item| {
            let (key, value, effect) = parse_taint(item)
                .map_err(|reason| invalid("registerWithTaints (--register-with-taints)", reason))?;
            Ok(TaintSpec { key, value, effect })
        })
        .collect()
}

/// Labels in the kubernetes.io and k8s.io namespaces belong to the control plane, except the
/// few a kubelet may set (upstream's node restriction list).
fn node_labels(pairs: Vec<(String, String)>) -> Result<BTreeMap<String, String>, ConfigError> {
    const ALLOWED_PREFIXES: &[&str] = &["kubelet.kubernetes.io/", "node.kubernetes.io/"];
    const ALLOWED: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "node.kubernetes.io/instance-type",
    ];
    let restricted = |key: &str| {
        let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
        let kubernetes = ["kubernetes.io", "k8s.io"]
            .iter()
            .any(|d| namespace == *d || namespace.ends_with(&format!(".{d}")));
        kubernetes
            && !ALLOWED.contains(&key)
            && !ALLOWED_PREFIXES.iter().any(|p| key.starts_with(p))
    };
    let bad: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| restricted(k))
        .collect();
    if !bad.is_empty() {
        return Err(invalid(
            "--node-labels",
            format!(
                "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: {bad:?}"
            ),
        ));
    }
    Ok(pairs.into_iter().collect())
}

/// The eviction signals upstream knows.
const EVICTION_SIGNALS: &[&str] = &[
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
    "allocatableMemory.available",
];

fn eviction_signal(setting: &str, signal: &str) -> Result<(), ConfigError> {
    if EVICTION_SIGNALS.contains(&signal) {
        Ok(())
    } else {
        Err(invalid(setting, format!("unknown signal {signal:?}")))
    }
}

/// Hard or soft eviction thresholds; an amount is a quantity or a percentage.
fn eviction_thresholds(
    pairs: Vec<(String, String)>,
    setting: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    for (signal, amount) in &pairs {
        eviction_signal(setting, signal)?;
        let ok = match amount.strip_suffix('%') {
            Some(percent) => percent
                .parse::<f64>()
                .is_ok_and(|p| (0.0..=100.0).contains(&p)),
            None => crate::units::parse_quantity(amount).is_ok_and(|q| q >= 0),
        };
        if !ok {
            return Err(invalid(
                setting,
                format!("invalid amount {amount:?} for {signal}"),
            ));
        }
    }
    Ok(pairs.into_iter().collect())
}

/// Upstream's ParseThresholdConfig: every soft threshold needs a grace period, and a grace
/// period is a non-negative duration of a known signal.
fn eviction_grace_periods(
    pairs: Vec<(String, String)>,
    soft: &[(String, String)],
) -> Result<BTreeMap<String, Duration>, ConfigError> {
    let setting = "evictionSoftGracePeriod (--eviction-soft-grace-period)";
    let mut periods = BTreeMap::new();
    for (signal, text) in pairs {
        eviction_signal(setting, &signal)?;
        let period = crate::units::parse_duration(&text).map_err(|_| {
            invalid(
                setting,
                format!(
                    "invalid eviction grace period specified: {text}, must be a positive value"
                ),
            )
        })?;
        periods.insert(signal, period);
    }
    if let Some((signal, _)) = soft.iter().find(|(s, _)| !periods.contains_key(s)) {
        return Err(invalid(
            "evictionSoft (--eviction-soft)",
            format!("grace period must be specified for the soft eviction threshold {signal}"),
        ));
    }
    Ok(periods)
}

/// Upstream's parseMinimumReclaims: a positive percentage or a non-negative quantity.
fn eviction_minimum_reclaim(
    pairs: Vec<(String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let setting = "evictionMinimumReclaim (--eviction-minimum-reclaim)";
    for (signal, amount) in &pairs {
        eviction_signal(setting, signal)?;
        match amount.strip_suffix('%') {
            Some(percent) => {
                if !percent.parse::<f64>().is_ok_and(|p| p > 0.0) {
                    return Err(invalid(
                        setting,
                        format!(
                            "eviction percentage minimum reclaim {signal} must be positive: {amount}"
                        ),
                    ));
                }
            }
            None => match crate::units::parse_quantity(amount) {
                Ok(q) if q >= 0 => {}
                Ok(_) => {
                    return Err(invalid(
                        setting,
                        format!("negative eviction minimum reclaim specified for {signal}"),
                    ));
                }
                Err(e) => return Err(invalid(setting, format!("{amount:?}: {e}"))),
            },
        }
    }
    Ok(pairs.into_iter().collect())
}

fn dead_count(value: i64, flag: &str) -> Result<i32, ConfigError> {
    i32::try_from(value).map_err(|_| invalid(flag, format!("{value} is out of range")))
}

/// Upstream's checks, with its messages: both thresholds are percents, the low one below the
/// high one, and a maximum age above the minimum.
fn image_gc(s: &Settings) -> Result<ImageGcPolicy, ConfigError> {
    let percent = |value: i64, setting: &str| {
        u8::try_from(value)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                invalid(
                    setting,
                    format!("{value} must be between 0 and 100, inclusive"),
                )
            })
    };
    let high = percent(
        s.image_gc_high_threshold_percent,
        "imageGCHighThresholdPercent (--image-gc-high-threshold)",
    )?;
    let low = percent(
        s.image_gc_low_threshold_percent,
        "imageGCLowThresholdPercent (--image-gc-low-threshold)",
    )?;
    if low >= high {
        return Err(invalid(
            "imageGCLowThresholdPercent (--image-gc-low-threshold)",
            format!(
                "{low} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {high}"
            ),
        ));
    }
    let max_age = Some(s.image_maximum_gc_age).filter(|age| !age.is_zero());
    if let Some(max) = max_age
        && s.image_minimum_gc_age >= max
    {
        return Err(invalid(
            "imageMaximumGCAge",
            format!(
                "{max:?} must be greater than imageMinimumGCAge {:?}",
                s.image_minimum_gc_age
            ),
        ));
    }
    Ok(ImageGcPolicy {
        high_threshold_percent: high,
        low_threshold_percent: low,
        min_age: s.image_minimum_gc_age,
        max_age,
    })
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_string(),
        reason: reason.into(),
    }
}

fn positive(duration: Duration, setting: &str) -> Result<(), ConfigError> {
    if duration.is_zero() {
        return Err(invalid(setting, "must be greater than zero"));
    }
    Ok(())
}

fn non_empty(text: String) -> Option<String> {
    Some(text).filter(|text| !text.is_empty())
}

/// Upstream's nodeutil.GetHostname: the override or the hostname, trimmed and lowercased.
fn node_name(hostname_override: &str, host: &dyn Host) -> Result<String, ConfigError> {
    let name = if hostname_override.trim().is_empty() {
        host.hostname().map_err(|error| ConfigError::NodeName {
            reason: format!("cannot read the machine's hostname: {error}"),
        })?
    } else {
        hostname_override.to_string()
    };
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return Err(ConfigError::NodeName {
            reason: "the hostname is empty; set --hostname-override".into(),
        });
    }
    Ok(name)
}

/// --node-ip: one address, or one IPv4 and one IPv6 address for a dual-stack node.
fn node_ips(text: &str) -> Result<Vec<IpAddr>, ConfigError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |reason: String| ConfigError::BadFlagValue {
        flag: "node-ip".into(),
        value: text.to_string(),
        reason,
    };
    let ips = text
        .split(',')
        .map(|ip| {
            ip.trim()
                .parse::<IpAddr>()
                .map_err(|_| bad(format!("{ip:?} is not a valid IP address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match ips.as_slice() {
        [_] => Ok(ips),
        [first, second] if first.is_ipv4() == second.is_ipv4() => Err(bad(
            "two addresses must be one IPv4 and one IPv6 address".into(),
        )),
        [first, second] if first.is_unspecified() || second.is_unspecified() => Err(bad(
            "a dual-stack pair cannot contain an unspecified address (0.0.0.0 or ::)".into(),
        )),
        [_, _] => Ok(ips),
        _ => Err(bad(
            "at most one IPv4 and one IPv6 address are allowed".into()
        )),
    }
}

fn pod_logs_dir(dir: String) -> Result<PathBuf, ConfigError> {
    if !dir.starts_with('/') {
        return Err(invalid(
            "podLogsDir",
            format!("{dir:?} must be an absolute path"),
        ));
    }
    if clean(&dir) != dir {
        return Err(invalid(
            "podLogsDir",
            format!("{dir:?} must be normalized (try {:?})", clean(&dir)),
        ));
    }
    Ok(PathBuf::from(dir))
}

/// Upstream's validation of enforceNodeAllocatable; "none" enforces nothing.
fn enforce_node_allocatable(
    levels: &[String],
    cgroups_per_qos: bool,
    kube_reserved_cgroup: &str,
    system_reserved_cgroup: &str,
) -> Result<Vec<String>, ConfigError> {
    const SETTING: &str = "enforceNodeAllocatable (--enforce-node-allocatable)";
    if !cgroups_per_qos && !levels.is_empty() {
        return Err(invalid(
            SETTING,
            "is not supported unless cgroupsPerQOS (--cgroups-per-qos) is set to true",
        ));
    }
    for level in levels {
        match level.as_str() {
            "pods" => {}
            "system-reserved" if system_reserved_cgroup.is_empty() => {
                return Err(invalid(
                    "systemReservedCgroup (--system-reserved-cgroup)",
                    "must be specified when \"system-reserved\" contained in enforceNodeAllocatable (--enforce-node-allocatable)",
                ));
            }
            "kube-reserved" if kube_reserved_cgroup.is_empty() => {
                return Err(invalid(
                    "kubeReservedCgroup (--kube-reserved-cgroup)",
                    "must be specified when \"kube-reserved\" contained in enforceNodeAllocatable (--enforce-node-allocatable)",
                ));
            }
            "system-reserved" | "kube-reserved" => {}
            "none" if levels.len() > 1 => {
                return Err(invalid(
                    SETTING,
                    "may not contain additional enforcements when \"none\" is specified",
                ));
            }
            "none" => return Ok(Vec::new()),
            other => {
                return Err(invalid(
                    SETTING,
                    format!(
                        "option {other:?} is not valid. Valid options are \"pods\", \"system-reserved\", \"kube-reserved\", or \"none\""
                    ),
                ));
            }
        }
    }
    Ok(levels.to_vec())
}

/// cpuCFSQuotaPeriod, within upstream's bounds. Upstream also wants the
/// CustomCPUCFSQuotaPeriod feature gate for a value other than 100ms; kubelet-rs has no
/// feature gates, so the period is taken as given.
fn cpu_cfs_quota_period(period: Duration) -> Result<Duration, ConfigError> {
    if period < Duration::from_millis(1) || period > Duration::from_secs(1) {
        return Err(invalid(
            "cpuCFSQuotaPeriod (--cpu-cfs-quota-period)",
            format!("{period:?} must be between 1ms and 1sec, inclusive"),
        ));
    }
    Ok(period)
}

pub(crate) fn cgroup_driver(driver: &str, host: &dyn Host) -> Result<CgroupDriver, ConfigError> {
    match driver {
        "cgroupfs" => Ok(CgroupDriver::Cgroupfs),
        "systemd" if host.systemd_running() => Ok(CgroupDriver::Systemd),
        "systemd" => Err(ConfigError::SystemdNotRunning {
            marker: PathBuf::from(SYSTEMD_MARKER),
        }),
        other => Err(invalid(
            "cgroupDriver (--cgroup-driver)",
            format!("{other:?} is not a valid cgroup driver, use \"cgroupfs\" or \"systemd\""),
        )),
    }
}

/// Upstream's names of TLS versions; an empty value keeps the TLS library's minimum.
fn tls_min_version(
    version: String,
    cipher_suites: &[String],
) -> Result<Option<String>, ConfigError> {
    const VERSIONS: [&str; 4] = [
        "VersionTLS10",
        "VersionTLS11",
        "VersionTLS12",
        "VersionTLS13",
    ];
    if version.is_empty() {
        return Ok(None);
    }
    if !VERSIONS.contains(&version.as_str()) {
        return Err(invalid(
            "tlsMinVersion (--tls-min-version)",
            format!("{version:?} is not one of {}", VERSIONS.join(", ")),
        ));
    }
    // TLS 1.3 suites are not configurable, so upstream refuses a list that would be ignored.
    if version == "VersionTLS13" && !cipher_suites.is_empty() {
        return Err(invalid(
            "tlsCipherSuites (--tls-cipher-suites)",
            format!("{cipher_suites:?} is not valid when tlsMinVersion is VersionTLS13"),
        ));
    }
    Ok(Some(version))
}

fn authorization_mode(
    mode: Option<String>,
    with_config_file: bool,
) -> Result<AuthorizationMode, ConfigError> {
    match mode.as_deref() {
        None if with_config_file => Ok(AuthorizationMode::Webhook),
        None => Ok(AuthorizationMode::AlwaysAllow),
        Some("AlwaysAllow") => Ok(AuthorizationMode::AlwaysAllow),
        Some("Webhook") => Ok(AuthorizationMode::Webhook),
        Some(other) => Err(invalid(
            "authorization.mode (--authorization-mode)",
            format!("{other:?} is not a valid mode, use \"AlwaysAllow\" or \"Webhook\""),
        )),
    }
}
