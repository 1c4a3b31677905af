//! End-to-end tests of `parse_args`: flags, config files, precedence, defaults and errors.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::host::Host;
use crate::resolve::run;
use crate::{
    AuthorizationMode, BuiltinRuntimeConfig, CgroupDriver, Command, ConfigError, ContainerRuntime,
    FeatureGates, ImageGcPolicy, KubeletConfig, LogFormat,
};

struct FakeHost {
    hostname: &'static str,
    systemd: bool,
}

impl Host for FakeHost {
    fn hostname(&self) -> std::io::Result<String> {
        Ok(self.hostname.to_string())
    }

    fn systemd_running(&self) -> bool {
        self.systemd
    }
}

const HOST: FakeHost = FakeHost {
    hostname: " Worker-1.Example\n",
    systemd: false,
};

fn command(args: &[&str]) -> Result<Command, ConfigError> {
    run(args.iter().map(|arg| arg.to_string()), &HOST)
}

fn config(args: &[&str]) -> KubeletConfig {
    match command(args) {
        Ok(Command::Run(config)) => *config,
        other => panic!("expected a configuration for {args:?}, got {other:?}"),
    }
}

fn error(args: &[&str]) -> String {
    match command(args) {
        Err(error) => error.to_string(),
        Ok(other) => panic!("expected an error for {args:?}, got {other:?}"),
    }
}

/// A config file in a fresh temporary directory.
struct ConfigFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(name: &str, body: &str) -> ConfigFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        ConfigFile { dir, path }
    }

    fn yaml(fields: &str) -> ConfigFile {
        ConfigFile::new(
            "kubelet.yaml",
            &format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n{fields}"
            ),
        )
    }

    fn flag(&self) -> String {
        format!("--config={}", self.path.display())
    }

    fn config(&self, more: &[&str]) -> KubeletConfig {
        let flag = self.flag();
        let mut args = vec![flag.as_str()];
        args.extend_from_slice(more);
        config(&args)
    }

    fn error(&self, more: &[&str]) -> String {
        let flag = self.flag();
        let mut args = vec![flag.as_str()];
        args.extend_from_slice(more);
        error(&args)
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Defaults shared by flags-only and config file starts.
fn assert_common_defaults(c: &KubeletConfig) {
    assert_eq!(c.node_name, "worker-1.example");
    assert!(c.node_ips.is_empty());
    assert_eq!(c.static_pod_path, None);
    assert_eq!(c.static_pod_url, None);
    assert!(c.static_pod_url_headers.is_empty());
    assert_eq!(c.file_check_frequency, Duration::from_secs(20));
    assert_eq!(c.http_check_frequency, Duration::from_secs(20));
    assert_eq!(c.sync_frequency, Duration::from_secs(60));
    assert_eq!(c.container_runtime, ContainerRuntime::Builtin);
    assert_eq!(
        c.builtin_runtime,
        BuiltinRuntimeConfig {
            root: "/var/lib/kubelet-rs".into(),
            state: "/run/kubelet-rs".into(),
            cni_conf_dir: "/etc/cni/net.d".into(),
            cni_bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            registry_config: None,
            streaming_address: "127.0.0.1:0".parse().unwrap(),
            streaming_idle_timeout: Duration::from_secs(4 * 3600),
        }
    );
    assert_eq!(c.runtime_request_timeout, Duration::from_secs(120));
    assert!(c.serialize_image_pulls);
    assert_eq!(c.root_dir, Path::new("/var/lib/kubelet"));
    assert_eq!(c.pod_logs_dir, Path::new("/var/log/pods"));
    assert_eq!(
        c.container_logs_symlink_dir,
        Path::new("/var/log/containers")
    );
    assert_eq!(c.container_log_max_size, 10 * 1024 * 1024);
    assert_eq!(c.container_log_max_files, 5);
    assert!(c.cluster_dns.is_empty());
    assert_eq!(c.cluster_domain, "");
    assert_eq!(c.resolv_conf, Path::new("/etc/resolv.conf"));
    assert_eq!(c.max_pods, 110);
    assert_eq!(c.cgroup_driver, CgroupDriver::Cgroupfs);
    assert_eq!(c.cgroup_root, "/");
    assert!(c.cgroups_per_qos);
    assert_eq!(c.healthz_port, 10248);
    assert_eq!(c.healthz_bind_address, ip("127.0.0.1"));
    assert!(!c.run_once);
    assert_eq!(c.verbosity, 0);
    assert_eq!(c.logging_format, LogFormat::Text);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.kubeconfig, None);
    assert_eq!(c.kube_api_qps, 50);
    assert_eq!(c.kube_api_burst, 100);
    assert_eq!(c.event_qps, 50);
    assert_eq!(c.event_burst, 100);
    assert!(c.register_node);
    assert!(c.register_with_taints.is_empty());
    assert_eq!(c.node_status_update_frequency, Duration::from_secs(10));
    assert_eq!(c.node_status_report_frequency, Duration::from_secs(300));
    assert_eq!(c.node_lease_duration_seconds, 40);
    assert_eq!(c.authentication_webhook_cache_ttl, Duration::from_secs(120));
    assert_eq!(
        c.authorization_webhook_cache_authorized_ttl,
        Duration::from_secs(300)
    );
    assert_eq!(
        c.authorization_webhook_cache_unauthorized_ttl,
        Duration::from_secs(30)
    );
    let eviction: Vec<_> = c
        .eviction_hard
        .iter()
        .map(|(k, v)| format!("{k}<{v}"))
        .collect();
    assert_eq!(
        eviction,
        [
            "imagefs.available<15%",
            "imagefs.inodesFree<5%",
            "memory.available<100Mi",
            "nodefs.available<10%",
            "nodefs.inodesFree<5%"
        ]
    );
    assert!(!c.local_pod_submission);
}

#[test]
fn flags_only_start_uses_legacy_defaults() {
    let c = config(&[]);
    assert_common_defaults(&c);
    assert_eq!(c.config_file, None);
    assert_eq!(c.read_only_port, 10255);
    assert!(c.anonymous_auth);
    assert!(!c.authentication_webhook);
    assert_eq!(c.authorization_mode, AuthorizationMode::AlwaysAllow);
}

#[test]
fn config_file_start_uses_file_defaults() {
    let file = ConfigFile::yaml("");
    let c = file.config(&[]);
    assert_common_defaults(&c);
    assert_eq!(c.config_file.as_deref(), Some(file.path.as_path()));
    assert_eq!(c.read_only_port, 0);
    assert!(!c.anonymous_auth);
    assert!(c.authentication_webhook);
    assert_eq!(c.authorization_mode, AuthorizationMode::Webhook);
}

#[test]
fn flags_override_file_which_overrides_defaults() {
    let file = ConfigFile::yaml(
        "maxPods: 50\nsyncFrequency: 30s\nclusterDNS: [10.0.0.10]\nclusterDomain: cluster.local\nstaticPodPath: /etc/kubernetes/manifests\n",
    );
    let c = file.config(&["--max-pods=70", "--cluster-dns", "10.0.0.20,10.0.0.21"]);
    assert_eq!(c.max_pods, 70, "flag wins over file");
    assert_eq!(
        c.sync_frequency,
        Duration::from_secs(30),
        "file wins over default"
    );
    assert_eq!(
        c.cluster_dns,
        vec![ip("10.0.0.20"), ip("10.0.0.21")],
        "flag list replaces file list"
    );
    assert_eq!(c.cluster_domain, "cluster.local");
    assert_eq!(
        c.static_pod_path.as_deref(),
        Some(Path::new("/etc/kubernetes/manifests"))
    );
    assert_eq!(c.file_check_frequency, Duration::from_secs(20), "default");
    // The flag order does not matter: --config is read first, flags applied after.
    let flag = file.flag();
    let c = config(&["--max-pods=70", &flag]);
    assert_eq!(c.max_pods, 70);
}

#[test]
fn yaml_and_json_files_are_equivalent() {
    let yaml = ConfigFile::yaml(
        "staticPodURL: http://example.test/pods\nstaticPodURLHeader:\n  Authorization: [Bearer x]\n  X-Multi: [a, b]\ncontainerLogMaxSize: 5Mi\ncontainerLogMaxFiles: 3\nhealthzPort: 0\nlogging:\n  format: json\n  verbosity: 3\n",
    );
    let json = ConfigFile::new(
        "kubelet.json",
        r#"{"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "staticPodURL": "http://example.test/pods",
            "staticPodURLHeader": {"Authorization": ["Bearer x"], "X-Multi": ["a", "b"]},
            "containerLogMaxSize": "5Mi", "containerLogMaxFiles": 3, "healthzPort": 0,
            "logging": {"format": "json", "verbosity": 3}}"#,
    );
    for file in [yaml, json] {
        let c = file.config(&[]);
        assert_eq!(
            c.static_pod_url.as_deref(),
            Some("http://example.test/pods")
        );
        assert_eq!(
            c.static_pod_url_headers,
            vec![
                ("Authorization".to_string(), "Bearer x".to_string()),
                ("X-Multi".to_string(), "a".to_string()),
                ("X-Multi".to_string(), "b".to_string()),
            ]
        );
        assert_eq!(c.container_log_max_size, 5 * 1024 * 1024);
        assert_eq!(c.container_log_max_files, 3);
        assert_eq!(c.healthz_port, 0, "an explicit 0 disables healthz");
        assert_eq!(c.logging_format, LogFormat::Json);
        assert_eq!(c.verbosity, 3);
    }
}

#[test]
fn zero_values_in_the_file_mean_default_for_non_pointer_fields() {
    let file = ConfigFile::yaml(
        "maxPods: 0\nsyncFrequency: 0s\ncontainerRuntimeEndpoint: \"\"\nport: 0\n",
    );
    let c = file.config(&[]);
    assert_eq!(c.max_pods, 110);
    assert_eq!(c.sync_frequency, Duration::from_secs(60));
    assert_eq!(c.container_runtime, ContainerRuntime::Builtin);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // From a flag, zero is a value.
    assert_eq!(config(&["--max-pods=0"]).max_pods, 0);
}

#[test]
fn implemented_flags_apply() {
    let c = config(&[
        "--pod-manifest-path=/etc/kubernetes/manifests",
        "--manifest-url=http://example.test/pods",
        "--manifest-url-header=Authorization:Bearer x,X-A:1",
        "--manifest-url-header",
        "X-A:2",
        "--file-check-frequency=1m30s",
        "--http-check-frequency=100ms",
        "--sync-frequency=2m",
        "--container-runtime-endpoint=unix:///tmp/cri.sock",
        "--image-service-endpoint=unix:///tmp/images.sock",
        "--runtime-request-timeout=10s",
        "--root-dir=/tmp/kubelet",
        "--container-log-max-size=1Gi",
        "--container-log-max-files=2",
        "--container-log-symlink-dir=/tmp/containers",
        "--hostname-override=Other-Node ",
        "--node-ip=10.1.0.5,fd00::5",
        "--cluster-dns=10.0.0.10,10.0.0.11",
        "--cluster-domain=cluster.local",
        "--resolv-conf=",
        "--cgroup-root=/kubepods",
        "--cgroups-per-qos=false",
        "--enforce-node-allocatable=",
        "--serialize-image-pulls=false",
        "--healthz-port=12345",
        "--healthz-bind-address=0.0.0.0",
        "--runonce",
        "--logging-format=json",
        "-v",
        "2",
    ]);
    assert_eq!(
        c.static_pod_path.as_deref(),
        Some(Path::new("/etc/kubernetes/manifests"))
    );
    assert_eq!(
        c.static_pod_url.as_deref(),
        Some("http://example.test/pods")
    );
    assert_eq!(
        c.static_pod_url_headers,
        vec![
            ("Authorization".to_string(), "Bearer x".to_string()),
            ("X-A".to_string(), "1".to_string()),
            ("X-A".to_string(), "2".to_string()),
        ]
    );
    assert_eq!(c.file_check_frequency, Duration::from_secs(90));
    assert_eq!(c.http_check_frequency, Duration::from_millis(100));
    assert_eq!(c.sync_frequency, Duration::from_secs(120));
    assert_eq!(
        c.container_runtime,
        ContainerRuntime::Remote {
            endpoint: "unix:///tmp/cri.sock".into(),
            image_endpoint: "unix:///tmp/images.sock".into(),
        }
    );
    assert_eq!(c.runtime_request_timeout, Duration::from_secs(10));
    assert_eq!(c.root_dir, Path::new("/tmp/kubelet"));
    assert_eq!(c.container_log_max_size, 1 << 30);
    assert_eq!(c.container_log_max_files, 2);
    assert_eq!(c.container_logs_symlink_dir, Path::new("/tmp/containers"));
    assert_eq!(c.node_name, "other-node");
    assert_eq!(c.node_ips, vec![ip("10.1.0.5"), ip("fd00::5")]);
    assert_eq!(c.cluster_dns, vec![ip("10.0.0.10"), ip("10.0.0.11")]);
    assert_eq!(c.cluster_domain, "cluster.local");
    assert_eq!(c.resolv_conf, Path::new(""));
    assert_eq!(c.cgroup_root, "/kubepods");
    assert!(!c.cgroups_per_qos);
    assert!(!c.serialize_image_pulls);
    assert_eq!(c.healthz_port, 12345);
    assert_eq!(c.healthz_bind_address, ip("0.0.0.0"));
    assert!(c.run_once);
    assert_eq!(c.logging_format, LogFormat::Json);
    assert_eq!(c.verbosity, 2);
    // Upstream deprecates config-file flags; the warning says so.
    assert!(
        c.warnings.contains(
            &"flag --pod-manifest-path is deprecated: set it in the config file given by --config"
                .to_string()
        )
    );
    assert!(!c.warnings.iter().any(|w| w.contains("--hostname-override")));
}

#[test]
fn verbosity_forms_and_file_precedence() {
    for form in [
        &["-v=4"][..],
        &["-v", "4"],
        &["--v=4"],
        &["--v", "4"],
        &["-v4"],
    ] {
        assert_eq!(config(form).verbosity, 4, "{form:?}");
    }
    let file = ConfigFile::yaml("logging:\n  verbosity: 5\n");
    assert_eq!(file.config(&[]).verbosity, 5);
    assert_eq!(file.config(&["-v=1"]).verbosity, 1);
    assert!(error(&["-v=300"]).contains("logging.verbosity (-v) 300 must be between 0 and 255"));
}

#[test]
fn unknown_and_malformed_flags_are_refused() {
    assert_eq!(error(&["--no-such-flag"]), "unknown flag: --no-such-flag");
    assert_eq!(
        error(&["--sync-frequency=10"]),
        "invalid value \"10\" for flag --sync-frequency: missing unit after \"10\": use ns, us, ms, s, m or h"
    );
    assert_eq!(
        error(&["--serialize-image-pulls=maybe"]),
        "invalid value \"maybe\" for flag --serialize-image-pulls: \"maybe\" is not a boolean (use true or false)"
    );
    assert!(
        error(&["--container-log-max-size=10MB"])
            .starts_with("invalid value \"10MB\" for flag --container-log-max-size:")
    );
    assert!(error(&["--node-ip=10.0.0.1,10.0.0.2"]).contains("one IPv4 and one IPv6"));
    assert!(error(&["--node-ip=nope"]).starts_with("invalid value \"nope\" for flag --node-ip"));
    assert!(error(&["--node-ip=0.0.0.0,::1"]).contains("unspecified"));
    assert!(error(&["--node-ip=10.0.0.1,fd00::1,10.0.0.2"]).contains("at most"));
    assert_eq!(config(&["--node-ip=::"]).node_ips, vec![ip("::")]);
}

#[test]
fn unsupported_flags_are_refused_unless_default() {
    assert_eq!(
        error(&["--cloud-provider=external"]),
        "flag --cloud-provider is not supported yet"
    );
    assert_eq!(
        error(&["--fail-swap-on=false"]),
        "flag --fail-swap-on is not supported yet"
    );
    assert_eq!(
        error(&["--vmodule=x=2"]),
        "flag --vmodule is not supported yet"
    );
    assert!(error(&["--port=abc"]).starts_with("invalid value \"abc\" for flag --port"));
    // Given their upstream default they change nothing, so they are accepted.
    let c = config(&[
        "--fail-swap-on=true",
        "--cert-dir=/var/lib/kubelet/pki",
        "--port",
        "10250",
    ]);
    assert_eq!(c.max_pods, 110);
    // Deprecated flags stay recognised.
    let dead = config(&[
        "--maximum-dead-containers=5",
        "--maximum-dead-containers-per-container=2",
        "--minimum-container-ttl-duration=1m",
    ]);
    assert_eq!(dead.maximum_dead_containers, 5);
    assert_eq!(dead.maximum_dead_containers_per_container, 2);
    assert_eq!(dead.minimum_container_ttl_duration, Duration::from_secs(60));
    let defaults = config(&[]);
    assert_eq!(
        (
            defaults.maximum_dead_containers,
            defaults.maximum_dead_containers_per_container
        ),
        (-1, 1)
    );
    assert!(
        config(&["--maximum-dead-containers=-1"])
            .warnings
            .iter()
            .any(|w| w.contains("--maximum-dead-containers is deprecated"))
    );
}

#[test]
fn graceful_shutdown_fields_are_read_from_the_file() {
    assert_eq!(config(&[]).shutdown_grace_period, Duration::ZERO);
    let c = ConfigFile::yaml("shutdownGracePeriod: 30s\nshutdownGracePeriodCriticalPods: 10s\n")
        .config(&[]);
    assert_eq!(c.shutdown_grace_period, Duration::from_secs(30));
    assert_eq!(
        c.shutdown_grace_period_critical_pods,
        Duration::from_secs(10)
    );
    assert!(
        !c.warnings.iter().any(|w| w.contains("shutdownGracePeriod")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn legacy_defaults_depend_on_the_config_file() {
    assert_eq!(config(&[]).read_only_port, 10255);
    assert_eq!(config(&["--read-only-port=0"]).read_only_port, 0);
    assert_eq!(config(&["--read-only-port=10300"]).read_only_port, 10300);
    assert_eq!(
        config(&["--authorization-mode=Webhook"]).authorization_mode,
        AuthorizationMode::Webhook
    );
    assert!(error(&["--authorization-mode=RBAC"]).contains("authorization.mode"));
    let file = ConfigFile::yaml("");
    let c = file.config(&[
        "--authorization-mode=Webhook",
        "--authentication-token-webhook",
    ]);
    assert_eq!(c.read_only_port, 0);
    assert_eq!(
        file.config(&["--read-only-port=10255"]).read_only_port,
        10255
    );
    assert_eq!(
        ConfigFile::yaml("readOnlyPort: 10266\n")
            .config(&[])
            .read_only_port,
        10266
    );
    assert!(error(&["--read-only-port=70000"]).contains("readOnlyPort"));
    assert!(error(&["--address=nowhere"]).contains("address"));
    assert!(file.config(&["--anonymous-auth"]).anonymous_auth);
    assert!(!config(&["--anonymous-auth=false"]).anonymous_auth);
    let c = ConfigFile::yaml(
        "authentication:\n  anonymous:\n    enabled: true\nauthorization:\n  mode: AlwaysAllow\n",
    )
    .config(&[]);
    assert!(c.anonymous_auth);
    assert_eq!(c.authorization_mode, AuthorizationMode::AlwaysAllow);
    assert!(
        !ConfigFile::yaml("authentication:\n  anonymous:\n    enabled: true\n")
            .config(&["--anonymous-auth=false"])
            .anonymous_auth
    );
}

#[test]
fn serving_settings_come_from_flags_and_file() {
    let c = config(&[]);
    assert_eq!(c.port, 10250);
    assert_eq!(c.cert_dir, PathBuf::from("/var/lib/kubelet/pki"));
    assert_eq!(c.tls_cert_file, None);
    assert_eq!(c.client_ca_file, None);
    assert_eq!(c.tls_min_version, None);
    assert!(c.tls_cipher_suites.is_empty());
    let c = config(&[
        "--port=10300",
        "--tls-cert-file=/pki/k.crt",
        "--tls-private-key-file=/pki/k.key",
        "--client-ca-file=/pki/ca.crt",
        "--cert-dir=/tmp/pki",
        "--tls-min-version=VersionTLS12",
        "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ]);
    assert_eq!(c.port, 10300);
    assert_eq!(c.tls_cert_file, Some(PathBuf::from("/pki/k.crt")));
    assert_eq!(c.tls_private_key_file, Some(PathBuf::from("/pki/k.key")));
    assert_eq!(c.client_ca_file, Some(PathBuf::from("/pki/ca.crt")));
    assert_eq!(c.cert_dir, PathBuf::from("/tmp/pki"));
    assert_eq!(c.tls_min_version.as_deref(), Some("VersionTLS12"));
    assert_eq!(c.tls_cipher_suites.len(), 2);

    let file = ConfigFile::yaml(
        "port: 10301\ntlsCertFile: pki/k.crt\ntlsPrivateKeyFile: pki/k.key\ntlsMinVersion: VersionTLS13\nauthentication:\n  x509:\n    clientCAFile: ca.crt\n",
    );
    let c = file.config(&[]);
    let dir = file.path.parent().unwrap();
    assert_eq!(c.port, 10301);
    assert_eq!(c.tls_cert_file, Some(dir.join("pki/k.crt")));
    assert_eq!(c.tls_private_key_file, Some(dir.join("pki/k.key")));
    assert_eq!(c.client_ca_file, Some(dir.join("ca.crt")));
    assert_eq!(c.tls_min_version.as_deref(), Some("VersionTLS13"));

    assert!(error(&["--port=0"]).contains("port (--port)"));
    assert!(error(&["--port=70000"]).contains("port (--port)"));
    assert!(error(&["--tls-cert-file=/pki/k.crt"]).contains("must be set together"));
    assert!(error(&["--tls-min-version=TLS1.2"]).contains("tlsMinVersion"));
    assert!(
        error(&[
            "--tls-min-version=VersionTLS13",
            "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        ])
        .contains("is not valid when tlsMinVersion is VersionTLS13")
    );
}

#[test]
fn file_type_meta_is_checked() {
    let file = ConfigFile::new(
        "k.yaml",
        "apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n",
    );
    assert_eq!(
        file.error(&[]),
        format!(
            "config file {}: apiVersion must be \"kubelet.config.k8s.io/v1beta1\", got \"kubelet.config.k8s.io/v1\"",
            file.path.display()
        )
    );
    let file = ConfigFile::new("k.yaml", "kind: KubeletConfiguration\n");
    assert!(
        file.error(&[])
            .ends_with("apiVersion must be \"kubelet.config.k8s.io/v1beta1\", got nothing")
    );
    let file = ConfigFile::new(
        "k.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n",
    );
    assert_eq!(
        file.error(&[]),
        format!(
            "config file {}: kind must be \"KubeletConfiguration\", got \"KubeProxyConfiguration\"",
            file.path.display()
        )
    );
}

#[test]
fn file_errors_name_the_file_and_field() {
    let file = ConfigFile::yaml("maxPods: 10\nmaxPodz: 10\n");
    let cfg = file.config(&[]);
    assert_eq!(cfg.max_pods, 10);
    assert!(
        cfg.warnings.iter().any(|w| w
            == &format!(
                "config file {}: unknown field \"maxPodz\", ignoring it",
                file.path.display()
            )),
        "{:?}",
        cfg.warnings
    );
    let file = ConfigFile::yaml("authentication:\n  anonymous:\n    enabld: true\n");
    assert!(
        file.config(&[])
            .warnings
            .iter()
            .any(|w| w.contains("unknown field \"authentication.anonymous.enabld\""))
    );
    let file = ConfigFile::yaml("maxPods: many\n");
    assert_eq!(
        file.error(&[]),
        format!(
            "config file {}: field maxPods: expected an integer, got \"many\"",
            file.path.display()
        )
    );
    let file = ConfigFile::yaml("syncFrequency: 10\n");
    assert!(
        file.error(&[])
            .ends_with("field syncFrequency: expected a duration string, got 10")
    );
    let file = ConfigFile::yaml("containerLogMaxSize: big\n");
    assert!(
        file.error(&[])
            .contains("field containerLogMaxSize: \"big\" is not a quantity")
    );
    let file = ConfigFile::new("k.yaml", "apiVersion: [\n");
    assert!(file.error(&[]).contains("invalid YAML"));
    let file = ConfigFile::new("k.json", "{\"apiVersion\": }");
    assert!(file.error(&[]).contains("invalid JSON"));
    let file = ConfigFile::new("k.yaml", "");
    assert!(file.error(&[]).ends_with("the file is empty"));
    let missing = file.dir.path().join("missing.yaml");
    let message = error(&[&format!("--config={}", missing.display())]);
    assert!(
        message.starts_with(&format!("cannot read config file {}:", missing.display())),
        "{message}"
    );
}

#[test]
fn unsupported_fields_warn_only_when_not_default() {
    let file = ConfigFile::yaml(
        "port: 10251\nenableServer: false\nauthentication:\n  anonymous:\n    enabled: true\n  webhook:\n    enabled: true\n    cacheTTL: 2m\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\nauthorization:\n  mode: Webhook\n  webhook:\n    cacheAuthorizedTTL: 0s\nevictionHard:\n  memory.available: 100Mi\n  nodefs.available: 10%\n  nodefs.inodesFree: 5%\n  imagefs.available: 15%\n  imagefs.inodesFree: 5%\nfailSwapOn: true\nfeatureGates: {}\nregisterWithTaints: []\nmemoryThrottlingFactor: 0.9\nlogging:\n  flushFrequency: 5000000000\n",
    );
    let c = file.config(&[]);
    assert_eq!(
        c.warnings,
        vec!["config field enableServer is not supported yet, ignoring it",]
    );
    // The implemented ones among them are applied.
    assert_eq!(c.port, 10251);
    assert!(c.anonymous_auth);
    assert_eq!(c.authorization_mode, AuthorizationMode::Webhook);
    assert_eq!(
        c.client_ca_file,
        Some(PathBuf::from("/etc/kubernetes/pki/ca.crt"))
    );
}

#[test]
fn config_file_paths_are_relative_to_the_file() {
    let file =
        ConfigFile::yaml("staticPodPath: manifests\npodLogsDir: ../logs/pods\nresolvConf: \"\"\n");
    let c = file.config(&[]);
    let dir = file.dir.path();
    assert_eq!(c.static_pod_path, Some(dir.join("manifests")));
    assert_eq!(c.pod_logs_dir, dir.parent().unwrap().join("logs/pods"));
    assert_eq!(
        c.resolv_conf,
        Path::new(""),
        "an empty resolvConf disables host DNS"
    );
    let file = ConfigFile::yaml("podLogsDir: /var/log//pods\n");
    assert!(
        file.error(&[])
            .contains("podLogsDir \"/var/log//pods\" must be normalized")
    );
}

#[test]
fn values_are_validated_with_field_and_flag_names() {
    assert_eq!(
        error(&["--max-pods=-1"]),
        format!(
            "invalid configuration: maxPods (--max-pods) -1 must be between 0 and {}",
            u32::MAX
        )
    );
    assert_eq!(
        error(&["--container-log-max-files=1"]),
        "invalid configuration: containerLogMaxFiles (--container-log-max-files) 1 must be greater than or equal to 2"
    );
    assert_eq!(
        error(&["--container-log-max-size=0"]),
        "invalid configuration: containerLogMaxSize (--container-log-max-size) 0 must be greater than zero"
    );
    assert_eq!(
        error(&["--cluster-dns=10.0.0.10,dns.local"]),
        "invalid configuration: clusterDNS (--cluster-dns) \"dns.local\" is not a valid IP address"
    );
    assert_eq!(
        error(&["--sync-frequency=0s"]),
        "invalid configuration: syncFrequency (--sync-frequency) must be greater than zero"
    );
    assert_eq!(
        error(&["--file-check-frequency=-5s"]),
        "invalid value \"-5s\" for flag --file-check-frequency: must not be negative"
    );
    assert!(
        error(&["--healthz-port=70000"])
            .starts_with("invalid configuration: healthzPort (--healthz-port) 70000")
    );
    assert!(error(&["--healthz-bind-address=localhost"]).contains("healthzBindAddress"));
    assert!(error(&["--logging-format=xml"]).contains("logging.format (--logging-format) \"xml\""));
    assert!(
        error(&["--cgroup-driver=docker"]).contains("cgroupDriver (--cgroup-driver) \"docker\"")
    );
    assert!(
        error(&["--image-service-endpoint=unix:///tmp/i.sock"]).contains(
            "imageServiceEndpoint (--image-service-endpoint) needs containerRuntimeEndpoint"
        )
    );
    let file = ConfigFile::yaml("containerLogMaxFiles: 1\n");
    assert!(
        file.error(&[])
            .contains("containerLogMaxFiles (--container-log-max-files) 1")
    );
}

#[test]
fn systemd_driver_needs_systemd() {
    let message = error(&["--cgroup-driver=systemd"]);
    assert_eq!(
        message,
        "invalid configuration: cgroupDriver (--cgroup-driver) is \"systemd\" but systemd is not running (/run/systemd/system does not exist); use \"cgroupfs\""
    );
    let file = ConfigFile::yaml("cgroupDriver: systemd\n");
    assert_eq!(file.error(&[]), message);
    let with_systemd = FakeHost {
        hostname: "node",
        systemd: true,
    };
    match run(["--cgroup-driver=systemd".to_string()], &with_systemd) {
        Ok(Command::Run(c)) => assert_eq!(c.cgroup_driver, CgroupDriver::Systemd),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn node_name_comes_from_the_host_when_not_overridden() {
    assert_eq!(config(&[]).node_name, "worker-1.example");
    assert_eq!(config(&["--hostname-override= MiXed "]).node_name, "mixed");
    let nameless = FakeHost {
        hostname: "  \n",
        systemd: false,
    };
    let message = run(Vec::new(), &nameless).unwrap_err().to_string();
    assert!(
        message.starts_with("cannot determine the node name"),
        "{message}"
    );
}

#[test]
fn help_and_version() {
    match command(&["--kubeconfig=/x", "--help"]) {
        Ok(Command::Help(text)) => assert!(text.contains("--max-pods int")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(command(&["-h"]), Ok(Command::Help(_))));
    match command(&["--version"]) {
        Ok(Command::Version(text)) => {
            assert!(text.starts_with("Kubernetes v1.32.0"), "{text}");
            assert!(text.contains("kubelet-rs"));
        }
        other => panic!("unexpected {other:?}"),
    }
    match command(&["--version=raw"]) {
        Ok(Command::Version(text)) => assert!(text.contains("GitVersion:\"v1.32.0\"")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(command(&["--version=false"]), Ok(Command::Run(_))));
    assert!(matches!(command(&["--help=false"]), Ok(Command::Run(_))));
}

#[test]
fn cluster_settings_from_flags_and_file() {
    let c = config(&[
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap.conf",
        "--kube-api-qps=5",
        "--kube-api-burst=10",
        "--node-labels=tier=web,node.kubernetes.io/pool=a",
        "--register-with-taints=dedicated=infra:NoSchedule,gpu:NoExecute",
        "--eviction-hard=memory.available<1Gi",
        "--rotate-certificates",
        "--authentication-token-webhook",
        "--node-status-update-frequency=4s",
    ]);
    assert_eq!(
        c.kubeconfig.as_deref(),
        Some(Path::new("/etc/kubernetes/kubelet.conf"))
    );
    assert!(c.bootstrap_kubeconfig.is_some());
    assert_eq!((c.kube_api_qps, c.kube_api_burst), (5, 10));
    assert_eq!(c.node_labels.get("tier").map(String::as_str), Some("web"));
    assert_eq!(c.register_with_taints.len(), 2);
    assert_eq!(c.register_with_taints[0].key, "dedicated");
    assert_eq!(c.register_with_taints[0].value, "infra");
    assert_eq!(c.register_with_taints[1].effect, "NoExecute");
    assert_eq!(c.eviction_hard.len(), 1);
    assert_eq!(c.eviction_hard["memory.available"], "1Gi");
    assert!(c.rotate_certificates);
    assert!(c.authentication_webhook);
    assert_eq!(c.node_status_update_frequency, Duration::from_secs(4));

    let file = ConfigFile::yaml(
        "registerWithTaints:\n- key: a\n  value: b\n  effect: NoSchedule\nevictionHard:\n  memory.available: 200Mi\nkubeReserved:\n  cpu: 100m\nserverTLSBootstrap: true\nenableLocalPodSubmission: true\nauthentication:\n  webhook:\n    enabled: false\n    cacheTTL: 10s\nnodeStatusReportFrequency: 1m\n",
    );
    let c = file.config(&[]);
    assert_eq!(c.register_with_taints[0].value, "b");
    assert_eq!(c.eviction_hard["memory.available"], "200Mi");
    assert_eq!(c.kube_reserved["cpu"], "100m");
    // An explicit empty evictionHard turns hard eviction off, as upstream's defaulting only
    // fills a nil map.
    assert!(
        ConfigFile::yaml("evictionHard: {}\n")
            .config(&[])
            .eviction_hard
            .is_empty()
    );
    assert_eq!(ConfigFile::yaml("").config(&[]).eviction_hard.len(), 5);
    assert!(c.server_tls_bootstrap && c.local_pod_submission);
    assert!(!c.authentication_webhook);
    assert_eq!(c.authentication_webhook_cache_ttl, Duration::from_secs(10));
    assert_eq!(c.node_status_report_frequency, Duration::from_secs(60));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn cluster_settings_are_validated() {
    assert!(error(&["--node-labels=kubernetes.io/role=master"]).contains("--node-labels"));
    assert!(error(&["--register-with-taints=a=b:Sometimes"]).contains("effect"));
    assert!(error(&["--eviction-hard=memory.free<1Gi"]).contains("unknown signal"));
    assert!(error(&["--eviction-hard=nodefs.available<120%"]).contains("invalid amount"));
    assert!(error(&["--kube-api-qps=-1"]).contains("kubeAPIQPS"));
}

#[test]
fn soft_eviction_settings() {
    let c = config(&[
        "--eviction-soft=memory.available<1Gi,nodefs.available<15%",
        "--eviction-soft-grace-period=memory.available=1m30s,nodefs.available=2m",
        "--eviction-max-pod-grace-period=30",
        "--eviction-minimum-reclaim=memory.available=500Mi,nodefs.available=5%",
        "--eviction-pressure-transition-period=30s",
        "--kernel-memcg-notification",
    ]);
    assert_eq!(c.eviction_soft["memory.available"], "1Gi");
    assert_eq!(
        c.eviction_soft_grace_period["memory.available"],
        Duration::from_secs(90)
    );
    assert_eq!(c.eviction_max_pod_grace_period, 30);
    assert_eq!(c.eviction_minimum_reclaim["nodefs.available"], "5%");
    assert_eq!(
        c.eviction_pressure_transition_period,
        Duration::from_secs(30)
    );
    assert!(c.kernel_memcg_notification);
    let defaults = config(&[]);
    assert_eq!(
        defaults.eviction_pressure_transition_period,
        Duration::from_secs(300)
    );
    assert!(defaults.eviction_soft.is_empty() && !defaults.kernel_memcg_notification);

    let file = ConfigFile::yaml(
        "evictionSoft:\n  memory.available: 300Mi\nevictionSoftGracePeriod:\n  memory.available: 10s\nevictionPressureTransitionPeriod: 1m\nevictionMaxPodGracePeriod: 20\n",
    );
    let c = file.config(&[]);
    assert_eq!(c.eviction_soft["memory.available"], "300Mi");
    assert_eq!(
        c.eviction_soft_grace_period["memory.available"],
        Duration::from_secs(10)
    );
    assert_eq!(
        c.eviction_pressure_transition_period,
        Duration::from_secs(60)
    );
    assert_eq!(c.eviction_max_pod_grace_period, 20);
}

#[test]
fn soft_eviction_settings_are_validated_as_upstream() {
    assert!(error(&["--eviction-soft=memory.available<1Gi"]).contains(
        "grace period must be specified for the soft eviction threshold memory.available"
    ));
    assert!(error(&["--eviction-soft-grace-period=memory.free=1m"]).contains("unknown signal"));
    assert!(
        error(&["--eviction-soft-grace-period=memory.available=soon"])
            .contains("invalid eviction grace period")
    );
    assert!(
        error(&["--eviction-minimum-reclaim=memory.available=0%"]).contains("must be positive")
    );
    assert!(
        error(&["--eviction-minimum-reclaim=memory.available=-1Mi"])
            .contains("negative eviction minimum reclaim")
    );
    assert!(
        error(&[
            "--eviction-soft=memory.available<101%",
            "--eviction-soft-grace-period=memory.available=1m"
        ])
        .contains("invalid amount")
    );
}

#[test]
fn an_endpoint_selects_a_remote_runtime_and_none_the_built_in_one() {
    let remote = config(&["--container-runtime-endpoint=unix:///run/containerd/containerd.sock"]);
    assert_eq!(
        remote.container_runtime,
        ContainerRuntime::Remote {
            endpoint: "unix:///run/containerd/containerd.sock".into(),
            image_endpoint: "unix:///run/containerd/containerd.sock".into(),
        }
    );
    let file = ConfigFile::yaml("containerRuntimeEndpoint: unix:///run/crio/crio.sock\n");
    assert!(matches!(
        file.config(&[]).container_runtime,
        ContainerRuntime::Remote { endpoint, .. } if endpoint == "unix:///run/crio/crio.sock"
    ));
    // An explicit empty flag is unset too.
    assert_eq!(
        file.config(&["--container-runtime-endpoint="])
            .container_runtime,
        ContainerRuntime::Builtin
    );
}

#[test]
fn built_in_runtime_flags_apply() {
    let c = config(&[
        "--runtime-root=/tmp/rt/root",
        "--runtime-state=/tmp/rt/state",
        "--cni-conf-dir=/tmp/rt/net.d",
        "--cni-bin-dir=/tmp/rt/bin",
        "--registry-config=/etc/kubelet-rs/certs.d",
        "--root-dir=/tmp/kubelet",
        "--streaming-address=0.0.0.0:10010",
        "--streaming-connection-idle-timeout=30m",
    ]);
    assert_eq!(
        c.builtin_runtime,
        BuiltinRuntimeConfig {
            root: "/tmp/rt/root".into(),
            state: "/tmp/rt/state".into(),
            cni_conf_dir: "/tmp/rt/net.d".into(),
            cni_bin_dirs: vec!["/tmp/rt/bin".into()],
            registry_config: Some("/etc/kubelet-rs/certs.d".into()),
            streaming_address: "0.0.0.0:10010".parse().unwrap(),
            streaming_idle_timeout: Duration::from_secs(30 * 60),
        }
    );
    assert_eq!(
        c.builtin_runtime_socket(),
        Path::new("/tmp/kubelet/runtime/cri.sock")
    );
    // Upstream deprecates the flag in favour of the config file, and so do we.
    assert_eq!(
        c.warnings,
        [
            "flag --streaming-connection-idle-timeout is deprecated: set it in the config file given by --config"
        ]
    );
}

/// kubeadm's files (testdata/kubeadm, from kubeadm's source): its generated config.yaml and the
/// flags of its drop-in and kubeadm-flags.env resolve as upstream reads them, and the only
/// warnings are upstream's deprecations of two flags kubeadm writes (and that one of them does
/// nothing here).
#[test]
fn kubeadm_files_of_v1_28_and_v1_32_are_read_as_upstream_reads_them() {
    const SYSTEMD_HOST: FakeHost = FakeHost {
        hostname: "worker-1",
        systemd: true,
    };
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kubeadm");
    for (release, node, pause) in [
        ("v1.28", "kubeadm-v1-28", "registry.k8s.io/pause:3.9"),
        ("v1.32", "kubeadm-v1-32", "registry.k8s.io/pause:3.10"),
    ] {
        let dir = testdata.join(release);
        let env = std::fs::read_to_string(dir.join("kubeadm-flags.env")).unwrap();
        let kubeadm_args = env
            .trim()
            .strip_prefix("KUBELET_KUBEADM_ARGS=")
            .and_then(|v| v.strip_prefix('"')?.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{release}: KUBELET_KUBEADM_ARGS=\"...\" expected: {env}"));
        let mut args = vec![
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf".to_string(),
            "--kubeconfig=/etc/kubernetes/kubelet.conf".to_string(),
            format!("--config={}", dir.join("config.yaml").display()),
        ];
        args.extend(kubeadm_args.split_whitespace().map(str::to_string));
        assert!(
            args.contains(&format!("--pod-infra-container-image={pause}")),
            "{args:?}"
        );
        let c = match run(args.clone(), &SYSTEMD_HOST) {
            Ok(Command::Run(c)) => *c,
            other => panic!("{release}: {args:?} gave {other:?}"),
        };
        assert_eq!(c.node_name, node);
        assert_eq!(
            c.container_runtime,
            ContainerRuntime::Remote {
                endpoint: "unix:///var/run/containerd/containerd.sock".into(),
                image_endpoint: "unix:///var/run/containerd/containerd.sock".into(),
            }
        );
        assert_eq!(
            c.bootstrap_kubeconfig.as_deref(),
            Some(Path::new("/etc/kubernetes/bootstrap-kubelet.conf"))
        );
        assert_eq!(
            c.kubeconfig.as_deref(),
            Some(Path::new("/etc/kubernetes/kubelet.conf"))
        );
        assert!(!c.anonymous_auth);
        assert!(c.authentication_webhook);
        assert_eq!(c.authentication_webhook_cache_ttl, Duration::from_secs(120));
        assert_eq!(
            c.client_ca_file.as_deref(),
            Some(Path::new("/etc/kubernetes/pki/ca.crt"))
        );
        assert_eq!(c.authorization_mode, AuthorizationMode::Webhook);
        assert_eq!(
            c.authorization_webhook_cache_authorized_ttl,
            Duration::from_secs(300)
        );
        assert_eq!(c.cgroup_driver, CgroupDriver::Systemd);
        assert_eq!(c.cluster_dns, vec![ip("10.96.0.10")]);
        assert_eq!(c.cluster_domain, "cluster.local");
        assert!(c.rotate_certificates);
        assert_eq!(
            c.static_pod_path.as_deref(),
            Some(Path::new("/etc/kubernetes/manifests"))
        );
        assert_eq!(c.healthz_bind_address, ip("127.0.0.1"));
        assert_eq!(c.healthz_port, 10248);
        assert_eq!(
            c.resolv_conf,
            PathBuf::from("/run/systemd/resolve/resolv.conf")
        );
        // Zero durations in the file are upstream's "unset": the defaults apply.
        assert_eq!(c.sync_frequency, Duration::from_secs(60));
        assert_eq!(c.node_status_update_frequency, Duration::from_secs(10));
        assert_eq!(c.runtime_request_timeout, Duration::from_secs(120));
        assert_eq!(c.read_only_port, 0);
        assert_eq!(c.port, 10250);
        assert_eq!(c.cert_dir, PathBuf::from("/var/lib/kubelet/pki"));
        assert_eq!(c.root_dir, PathBuf::from("/var/lib/kubelet"));
        assert_eq!(
            c.warnings,
            vec![
                "flag --container-runtime-endpoint is deprecated: set it in the config file given by --config".to_string(),
                "flag --pod-infra-container-image has no effect: image garbage collection leaves alone the images the runtime pins, its sandbox image among them".to_string(),
                "flag --pod-infra-container-image is deprecated: the image garbage collector gets the sandbox image from the CRI".to_string(),
            ],
            "{release}"
        );
    }
}

#[test]
fn image_gc_policy_has_upstream_defaults_flags_fields_and_checks() {
    let defaults = config(&[]).image_gc;
    assert_eq!(
        defaults,
        ImageGcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
            max_age: None,
        }
    );
    let flags = config(&[
        "--image-gc-high-threshold=90",
        "--image-gc-low-threshold=70",
        "--minimum-image-ttl-duration=5m",
    ])
    .image_gc;
    assert_eq!(
        (flags.high_threshold_percent, flags.low_threshold_percent),
        (90, 70)
    );
    assert_eq!(flags.min_age, Duration::from_secs(300));
    let file = ConfigFile::yaml(
        "imageGCHighThresholdPercent: 100\nimageGCLowThresholdPercent: 0\nimageMaximumGCAge: 48h\n",
    )
    .config(&[])
    .image_gc;
    assert_eq!(
        (file.high_threshold_percent, file.low_threshold_percent),
        (100, 0)
    );
    assert_eq!(file.max_age, Some(Duration::from_secs(48 * 3600)));

    assert_eq!(
        error(&["--image-gc-high-threshold=101"]),
        "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive"
    );
    assert_eq!(
        error(&["--image-gc-low-threshold=85"]),
        "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 85 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 85"
    );
    assert!(
        ConfigFile::yaml("imageMinimumGCAge: 2h\nimageMaximumGCAge: 1h\n")
            .error(&[])
            .contains("imageMaximumGCAge 3600s must be greater than imageMinimumGCAge 7200s"),
    );
}

#[test]
fn feature_gates_merge_the_flag_over_the_file_and_report_the_unimplemented() {
    let c = config(&[]);
    assert_eq!(c.feature_gates, FeatureGates::default());
    assert!(!c.feature_gates.memory_qos);
    assert_eq!(c.memory_throttling_factor, 0.9);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let c = config(&["--feature-gates=MemoryQoS=true,Foo=false,CSIVolumeHealth=true"]);
    assert!(c.feature_gates.memory_qos);
    assert!(c.feature_gates.csi_volume_health);
    assert_eq!(
        c.warnings,
        vec![
            "flag --feature-gates is deprecated: set it in the config file given by --config",
            "feature gate Foo=false is not implemented by kubelet-rs, ignoring it"
        ]
    );

    let file = ConfigFile::yaml(
        "featureGates:\n  MemoryQoS: true\n  EventedPLEG: true\nmemoryThrottlingFactor: 0.5\n",
    );
    let c = file.config(&[]);
    assert!(c.feature_gates.memory_qos);
    assert_eq!(c.memory_throttling_factor, 0.5);
    assert_eq!(
        c.warnings,
        vec!["feature gate EventedPLEG=true is not implemented by kubelet-rs, ignoring it"]
    );
    // Upstream merges the flag's gates into the file's: the flag wins for the gates it names.
    let c = file.config(&["--feature-gates=MemoryQoS=false"]);
    assert!(!c.feature_gates.memory_qos);
    assert!(
        c.warnings.iter().any(|w| w.contains("EventedPLEG=true")),
        "{:?}",
        c.warnings
    );

    assert!(error(&["--feature-gates=MemoryQoS=maybe"]).contains("MemoryQoS"));
    for factor in ["0", "1.5", "-0.1"] {
        let file = ConfigFile::yaml(&format!("memoryThrottlingFactor: {factor}\n"));
        assert!(
            file.error(&[])
                .contains("must be greater than 0 and less than or equal to 1.0"),
            "{factor}: {}",
            file.error(&[])
        );
    }
    let file = ConfigFile::yaml("memoryThrottlingFactor: 1\n");
    assert_eq!(file.config(&[]).memory_throttling_factor, 1.0);
}

#[test]
fn cgroup_limits_and_node_allocatable_enforcement() {
    let c = config(&[]);
    assert_eq!(c.enforce_node_allocatable, vec!["pods".to_string()]);
    assert_eq!(c.pod_pids_limit, -1);
    assert!(c.cpu_cfs_quota);
    assert_eq!(c.cpu_cfs_quota_period, Duration::from_millis(100));

    let c = config(&[
        "--enforce-node-allocatable=pods,kube-reserved",
        "--kube-reserved-cgroup=/kube.slice",
        "--pod-max-pids=100",
        "--cpu-cfs-quota=false",
        "--cpu-cfs-quota-period=50ms",
    ]);
    assert_eq!(c.enforce_node_allocatable, vec!["pods", "kube-reserved"]);
    assert_eq!(c.kube_reserved_cgroup, "/kube.slice");
    assert_eq!(c.pod_pids_limit, 100);
    assert!(!c.cpu_cfs_quota);
    assert_eq!(c.cpu_cfs_quota_period, Duration::from_millis(50));

    let file = ConfigFile::yaml(
        "enforceNodeAllocatable: [pods, system-reserved]\nsystemReservedCgroup: /system.slice\npodPidsLimit: 0\ncpuCFSQuota: false\ncpuCFSQuotaPeriod: 10ms\n",
    );
    let c = file.config(&[]);
    assert_eq!(c.enforce_node_allocatable, vec!["pods", "system-reserved"]);
    assert_eq!(c.system_reserved_cgroup, "/system.slice");
    assert_eq!(c.pod_pids_limit, 0);
    assert!(!c.cpu_cfs_quota);
    assert_eq!(c.cpu_cfs_quota_period, Duration::from_millis(10));
    assert!(
        config(&["--enforce-node-allocatable=none"])
            .enforce_node_allocatable
            .is_empty()
    );

    assert_eq!(
        error(&["--enforce-node-allocatable=kube-reserved"]),
        "invalid configuration: kubeReservedCgroup (--kube-reserved-cgroup) must be specified when \"kube-reserved\" contained in enforceNodeAllocatable (--enforce-node-allocatable)"
    );
    assert!(
        error(&["--enforce-node-allocatable=system-reserved"])
            .contains("systemReservedCgroup (--system-reserved-cgroup) must be specified")
    );
    assert!(
        error(&["--enforce-node-allocatable=pods,none"])
            .contains("may not contain additional enforcements")
    );
    assert!(error(&["--enforce-node-allocatable=cpus"]).contains("\"cpus\""));
    assert!(
        error(&["--cgroups-per-qos=false"])
            .contains("is not supported unless cgroupsPerQOS (--cgroups-per-qos) is set to true")
    );
    assert!(
        error(&["--cpu-cfs-quota-period=2s"]).contains("must be between 1ms and 1sec, inclusive")
    );
}

#[test]
fn volume_stats_agg_period_from_flag_and_file() {
    assert_eq!(config(&[]).volume_stats_agg_period, Duration::from_secs(60));
    assert_eq!(
        config(&["--volume-stats-agg-period=250ms"]).volume_stats_agg_period,
        Duration::from_millis(250)
    );
    // The flag's zero disables the stats; the file's zero is upstream's "unset".
    assert_eq!(
        config(&["--volume-stats-agg-period=0"]).volume_stats_agg_period,
        Duration::ZERO
    );
    let file = ConfigFile::yaml("volumeStatsAggPeriod: 0s\n");
    assert_eq!(
        file.config(&[]).volume_stats_agg_period,
        Duration::from_secs(60)
    );
    let file = ConfigFile::yaml("volumeStatsAggPeriod: 2m\n");
    let c = file.config(&[]);
    assert_eq!(c.volume_stats_agg_period, Duration::from_secs(120));
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.contains("volumeStatsAggPeriod")),
        "{:?}",
        c.warnings
    );
}
