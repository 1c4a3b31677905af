use super::*;
use env::EnvError;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
    HostAlias, ObjectFieldSelector, PodSecurityContext, PodSpec, ResourceFieldSelector,
    ResourceRequirements, SeccompProfile, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_cri::api::{MountPropagation, NamespaceMode, security_profile::ProfileType};
use kubelet_volumes::Propagation;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

fn pod(containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("prod".into()),
            uid: Some("u-1".into()),
            labels: Some(BTreeMap::from([("tier".into(), "front".into())])),
            annotations: Some(BTreeMap::from([("team".into(), "core".into())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            node_name: Some("node-1".into()),
            service_account_name: Some("sa".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container() -> Container {
    Container {
        name: "app".into(),
        image: Some("busybox:1.35".into()),
        termination_message_path: Some("/dev/termination-log".into()),
        termination_message_policy: Some("File".into()),
        ..Default::default()
    }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn resource_ref(name: &str, resource: &str, divisor: Option<&str>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Fixture {
    root: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("pods/u-1")).unwrap();
        Fixture { root }
    }

    fn input<'a>(&self, pod: &'a Pod) -> ContainerInput<'a> {
        ContainerInput {
            pod,
            container: &pod.spec.as_ref().unwrap().containers[0],
            restart_count: 2,
            image_ref: "sha256:abc".into(),
            mounts: vec![],
            pod_ip: Some("10.1.0.5".into()),
            pod_ips: vec!["10.1.0.5".into()],
            host_ip: Some("192.168.0.10".into()),
            pod_dir: self.root.path().join("pods/u-1"),
            cluster_domain: "cluster.local".into(),
            node_memory_capacity: 4 << 30,
            node_allocatable_cpu_milli: Some(2000),
            cfs_quota: Default::default(),
            memory_qos: None,
            env_sources: Default::default(),
        }
    }
}

fn env_map(config: &ContainerConfig) -> BTreeMap<String, String> {
    config
        .envs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

#[test]
fn basic_fields() {
    let f = Fixture::new();
    let mut c = container();
    c.working_dir = Some("/srv".into());
    c.stdin = Some(true);
    c.tty = Some(true);
    let p = pod(vec![c]);
    let config = container_config(&f.input(&p)).unwrap();
    assert_eq!(
        config.metadata,
        Some(ContainerMetadata {
            name: "app".into(),
            attempt: 2
        })
    );
    let image = config.image.unwrap();
    assert_eq!(
        (image.image.as_str(), image.user_specified_image.as_str()),
        ("sha256:abc", "busybox:1.35")
    );
    assert_eq!(config.log_path, "app/2.log");
    assert_eq!(container_log_path("c", 0), "c/0.log");
    assert_eq!(config.working_dir, "/srv");
    assert!(config.stdin && config.tty && !config.stdin_once);
    assert_eq!(config.labels[labels::CONTAINER_NAME_LABEL], "app");
    assert_eq!(
        config.annotations[labels::CONTAINER_RESTART_COUNT_ANNOTATION],
        "2"
    );
}

#[test]
fn command_and_args_expand_against_env() {
    let f = Fixture::new();
    let mut c = container();
    c.env = Some(vec![
        var("GREETING", "hello"),
        var("MSG", "$(GREETING) world"),
        var("LATER", "$(UNSET)"),
    ]);
    c.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "echo $(MSG) $$(MSG) $(NOPE)".into(),
    ]);
    c.args = Some(vec!["$(LATER)".into()]);
    let p = pod(vec![c]);
    let config = container_config(&f.input(&p)).unwrap();
    assert_eq!(
        config.command,
        ["sh", "-c", "echo hello world $(MSG) $(NOPE)"]
    );
    assert_eq!(config.args, ["$(UNSET)"]);
    let keys: Vec<_> = config.envs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["GREETING", "MSG", "LATER"], "declaration order");
}

#[test]
fn env_field_refs() {
    let f = Fixture::new();
    let mut c = container();
    c.env = Some(vec![
        field("NAME", "metadata.name"),
        field("NS", "metadata.namespace"),
        field("UID", "metadata.uid"),
        field("TIER", "metadata.labels['tier']"),
        field("TEAM", "metadata.annotations['team']"),
        field("NODE", "spec.nodeName"),
        field("SA", "spec.serviceAccountName"),
        field("HOST_IP", "status.hostIP"),
        field("HOST_IPS", "status.hostIPs"),
        field("POD_IP", "status.podIP"),
        field("POD_IPS", "status.podIPs"),
        var("DUP", "first"),
        var("DUP", "second"),
    ]);
    let p = pod(vec![c]);
    let mut input = f.input(&p);
    input.pod_ips = vec!["10.1.0.5".into(), "fd00::5".into()];
    let env = env_map(&container_config(&input).unwrap());
    let want = [
        ("NAME", "web"),
        ("NS", "prod"),
        ("UID", "u-1"),
        ("TIER", "front"),
        ("TEAM", "core"),
        ("NODE", "node-1"),
        ("SA", "sa"),
        ("HOST_IP", "192.168.0.10"),
        ("HOST_IPS", "192.168.0.10"),
        ("POD_IP", "10.1.0.5"),
        ("POD_IPS", "10.1.0.5,fd00::5"),
        ("DUP", "second"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    let mut bad = container();
    bad.env = Some(vec![field("X", "spec.unknown")]);
    let p = pod(vec![bad]);
    assert!(matches!(
        container_config(&f.input(&p)),
        Err(ContainerConfigError::Env(EnvError::UnsupportedFieldPath(_)))
    ));
}

#[test]
fn env_resource_refs() {
    let f = Fixture::new();
    let mut c = container();
    c.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("250m".into())),
            ("memory".into(), Quantity("64Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".into(),
            Quantity("128Mi".into()),
        )])),
        ..Default::default()
    });
    c.env = Some(vec![
        resource_ref("CPU_REQ", "requests.cpu", None),
        resource_ref("CPU_REQ_M", "requests.cpu", Some("1m")),
        resource_ref("CPU_LIM", "limits.cpu", None),
        resource_ref("MEM_LIM_MI", "limits.memory", Some("1Mi")),
        resource_ref("MEM_REQ", "requests.memory", None),
    ]);
    let p = pod(vec![c]);
    let env = env_map(&container_config(&f.input(&p)).unwrap());
    assert_eq!(env["CPU_REQ"], "1", "rounded up to whole cpus");
    assert_eq!(env["CPU_REQ_M"], "250");
    assert_eq!(env["CPU_LIM"], "2", "no limit reads as node allocatable");
    assert_eq!(env["MEM_LIM_MI"], "128");
    assert_eq!(env["MEM_REQ"], (64u64 << 20).to_string());
}

#[test]
fn config_map_and_secret_refs_fail_without_api_server() {
    let f = Fixture::new();
    let mut c = container();
    c.env = Some(vec![EnvVar {
        name: "X".into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: "settings".into(),
                key: "k".into(),
                optional: Some(true),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    let p = pod(vec![c]);
    let err = container_config(&f.input(&p)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "couldn't get configMap prod/settings, no kubeClient defined"
    );

    let mut c = container();
    c.env_from = Some(vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: "all".into(),
            optional: None,
        }),
        ..Default::default()
    }]);
    let p = pod(vec![c]);
    assert!(matches!(
        container_config(&f.input(&p)),
        Err(ContainerConfigError::Env(EnvError::ConfigMap { .. }))
    ));
}

#[test]
fn mounts_etc_hosts_and_termination_message() {
    let f = Fixture::new();
    let mut p = pod(vec![container()]);
    p.spec.as_mut().unwrap().subdomain = Some("svc1".into());
    p.spec.as_mut().unwrap().host_aliases = Some(vec![HostAlias {
        ip: "10.0.0.9".into(),
        hostnames: Some(vec!["a.local".into(), "b.local".into()]),
    }]);
    let mut input = f.input(&p);
    input.mounts = vec![HostMount {
        container_path: "/data".into(),
        host_path: "/var/lib/kubelet/pods/u-1/volumes/x".into(),
        read_only: true,
        propagation: Propagation::HostToContainer,
    }];
    let config = container_config(&input).unwrap();
    let paths: Vec<_> = config
        .mounts
        .iter()
        .map(|m| m.container_path.as_str())
        .collect();
    assert_eq!(paths, ["/data", "/etc/hosts", "/dev/termination-log"]);
    assert!(config.mounts[0].readonly);
    assert_eq!(
        config.mounts[0].propagation,
        MountPropagation::PropagationHostToContainer as i32
    );

    let hosts = std::fs::read_to_string(&config.mounts[1].host_path).unwrap();
    assert_eq!(
        hosts,
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
         10.1.0.5\tweb.svc1.prod.svc.cluster.local\tweb\n\n# Entries added by HostAliases.\n10.0.0.9\ta.local\tb.local\n"
    );
    assert_eq!(
        config.mounts[1].host_path,
        input.pod_dir.join("etc-hosts").to_string_lossy()
    );

    let message = std::path::Path::new(&config.mounts[2].host_path);
    assert_eq!(
        message.parent().unwrap(),
        input.pod_dir.join("containers/app")
    );
    let name = message.file_name().unwrap().to_str().unwrap();
    assert!(
        name.len() == 8 && name.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    let meta = std::fs::metadata(message).unwrap();
    assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (0, 0o666));

    let again = container_config(&input).unwrap();
    assert_ne!(
        again.mounts[2].host_path, config.mounts[2].host_path,
        "a new file per start"
    );
}

#[test]
fn no_etc_hosts_without_pod_ip_or_when_mounted() {
    let f = Fixture::new();
    let p = pod(vec![container()]);
    let mut input = f.input(&p);
    input.pod_ip = None;
    input.pod_ips = vec![];
    let config = container_config(&input).unwrap();
    assert!(
        config
            .mounts
            .iter()
            .all(|m| m.container_path != "/etc/hosts")
    );

    let mut c = container();
    c.volume_mounts = Some(vec![VolumeMount {
        name: "h".into(),
        mount_path: "/etc/hosts".into(),
        ..Default::default()
    }]);
    let p = pod(vec![c]);
    let config = container_config(&f.input(&p)).unwrap();
    assert!(
        config
            .mounts
            .iter()
            .all(|m| m.container_path != "/etc/hosts")
    );
}

#[test]
fn resources_math() {
    let f = Fixture::new();
    let mut c = container();
    c.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("250m".into())),
            ("memory".into(), Quantity("1Gi".into())),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), Quantity("1500m".into())),
            ("memory".into(), Quantity("2Gi".into())),
        ])),
        ..Default::default()
    });
    let p = pod(vec![c]);
    let config = container_config(&f.input(&p)).unwrap();
    let r = config.linux.unwrap().resources.unwrap();
    assert_eq!(
        (r.cpu_period, r.cpu_quota, r.cpu_shares),
        (100_000, 150_000, 256)
    );
    assert_eq!(r.memory_limit_in_bytes, 2 << 30);
    assert_eq!(r.oom_score_adj, 750, "burstable: 1000 - 1000 * 1Gi / 4Gi");
}

#[test]
fn security_context_mapping() {
    let f = Fixture::new();
    let mut c = container();
    c.security_context = Some(SecurityContext {
        run_as_user: Some(1001),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            add: Some(vec!["NET_ADMIN".into()]),
            drop: Some(vec!["ALL".into()]),
        }),
        ..Default::default()
    });
    let mut p = pod(vec![c]);
    p.spec.as_mut().unwrap().security_context = Some(PodSecurityContext {
        run_as_user: Some(1000),
        run_as_group: Some(3000),
        fs_group: Some(2000),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    });
    let config = container_config(&f.input(&p)).unwrap();
    let sc = config.linux.unwrap().security_context.unwrap();
    assert_eq!(
        sc.run_as_user.map(|v| v.value),
        Some(1001),
        "container overrides pod"
    );
    assert_eq!(sc.run_as_group.map(|v| v.value), Some(3000));
    assert_eq!(sc.supplemental_groups, [2000]);
    assert!(sc.no_new_privs && sc.readonly_rootfs && !sc.privileged);
    let caps = sc.capabilities.unwrap();
    assert_eq!(
        (caps.add_capabilities, caps.drop_capabilities),
        (vec!["NET_ADMIN".to_owned()], vec!["ALL".to_owned()])
    );
    assert_eq!(
        sc.seccomp.unwrap().profile_type,
        ProfileType::RuntimeDefault as i32
    );
    assert_eq!(sc.masked_paths.len(), security::DEFAULT_MASKED_PATHS.len());
    assert_eq!(
        sc.readonly_paths.len(),
        security::DEFAULT_READONLY_PATHS.len()
    );
    assert_eq!(
        sc.namespace_options.unwrap().pid,
        NamespaceMode::Container as i32
    );
}

#[test]
fn security_defaults_and_overrides() {
    let f = Fixture::new();
    let p = pod(vec![container()]);
    let sc = container_config(&f.input(&p))
        .unwrap()
        .linux
        .unwrap()
        .security_context
        .unwrap();
    assert_eq!(
        sc.seccomp.unwrap().profile_type,
        ProfileType::Unconfined as i32,
        "seccompDefault is off"
    );
    assert!(!sc.no_new_privs && sc.run_as_user.is_none() && sc.capabilities.is_none());

    let mut c = container();
    c.security_context = Some(SecurityContext {
        privileged: Some(true),
        proc_mount: Some("Unmasked".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some("prof.json".into()),
        }),
        ..Default::default()
    });
    let p = pod(vec![c]);
    let sc = container_config(&f.input(&p))
        .unwrap()
        .linux
        .unwrap()
        .security_context
        .unwrap();
    assert!(sc.privileged && sc.masked_paths.is_empty() && sc.readonly_paths.is_empty());
    let seccomp = sc.seccomp.unwrap();
    assert_eq!(seccomp.profile_type, ProfileType::Localhost as i32);
    assert_eq!(
        seccomp.localhost_ref,
        f.root.path().join("seccomp/prof.json").to_string_lossy()
    );
}
