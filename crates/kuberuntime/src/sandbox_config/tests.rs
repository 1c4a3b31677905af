use super::*;
use k8s_openapi::api::core::v1::{
    PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext, Sysctl,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

fn pod(spec: PodSpec) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("prod".into()),
            uid: Some("u-1".into()),
            labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    }
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox".into()),
        ..Default::default()
    }
}

fn opts() -> SandboxOptions {
    SandboxOptions {
        pod_logs_dir: "/var/log/pods".into(),
        dns: DnsOptions {
            cluster_dns: vec!["10.96.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        },
        cgroup_root: "/".into(),
        cgroups_per_qos: true,
        cgroup_driver: Default::default(),
        cfs_quota: Default::default(),
    }
}

fn security(config: &PodSandboxConfig) -> &LinuxSandboxSecurityContext {
    config
        .linux
        .as_ref()
        .unwrap()
        .security_context
        .as_ref()
        .unwrap()
}

fn namespaces(config: &PodSandboxConfig) -> NamespaceOption {
    security(config).namespace_options.clone().unwrap()
}

#[test]
fn basic_sandbox() {
    let c = pod_sandbox_config(
        &pod(PodSpec {
            containers: vec![container("a")],
            ..Default::default()
        }),
        2,
        &opts(),
    )
    .unwrap();
    assert_eq!(
        c.metadata,
        Some(PodSandboxMetadata {
            name: "web".into(),
            uid: "u-1".into(),
            namespace: "prod".into(),
            attempt: 2
        })
    );
    assert_eq!(c.hostname, "web");
    assert_eq!(c.log_directory, "/var/log/pods/prod_web_u-1");
    assert_eq!(c.labels["app"], "web");
    assert_eq!(c.labels[labels::POD_UID_LABEL], "u-1");
    assert_eq!(c.dns_config.as_ref().unwrap().servers, ["10.96.0.10"]);
    let linux = c.linux.as_ref().unwrap();
    assert_eq!(linux.cgroup_parent, "/kubepods/besteffort/podu-1");
    assert_eq!(
        security(&c).seccomp.as_ref().unwrap().profile_type,
        ProfileType::RuntimeDefault as i32
    );
    assert!(!security(&c).privileged);
    assert_eq!(linux.overhead, Some(LinuxContainerResources::default()));
    assert_eq!(linux.resources.as_ref().unwrap().cpu_shares, 2);
}

#[test]
fn cgroup_parent_is_the_pods_slice_under_systemd() {
    let pod = pod(PodSpec {
        containers: vec![container("a")],
        ..Default::default()
    });
    let opts = SandboxOptions {
        cgroup_driver: qos::CgroupDriver::Systemd,
        ..opts()
    };
    let c = pod_sandbox_config(&pod, 0, &opts).unwrap();
    assert_eq!(
        c.linux.unwrap().cgroup_parent,
        "kubepods-besteffort-podu_1.slice"
    );
}
#[test]
fn namespaces_are_always_explicit() {
    let ns = namespaces(&pod_sandbox_config(&pod(PodSpec::default()), 0, &opts()).unwrap());
    assert_eq!(
        (ns.network, ns.pid, ns.ipc),
        (
            NamespaceMode::Pod as i32,
            NamespaceMode::Container as i32,
            NamespaceMode::Pod as i32
        )
    );

    let shared = pod(PodSpec {
        share_process_namespace: Some(true),
        ..Default::default()
    });
    assert_eq!(
        namespaces(&pod_sandbox_config(&shared, 0, &opts()).unwrap()).pid,
        NamespaceMode::Pod as i32
    );

    let host = pod(PodSpec {
        host_network: Some(true),
        host_pid: Some(true),
        host_ipc: Some(true),
        ..Default::default()
    });
    let c = pod_sandbox_config(&host, 0, &opts()).unwrap();
    let ns = namespaces(&c);
    assert_eq!(
        (ns.network, ns.pid, ns.ipc),
        (
            NamespaceMode::Node as i32,
            NamespaceMode::Node as i32,
            NamespaceMode::Node as i32
        )
    );
    assert_eq!(
        c.hostname, "",
        "host-network sandboxes keep the node's hostname"
    );
}

#[test]
fn port_mappings_follow_make_port_mappings() {
    let port = |name: Option<&str>, proto: &str, cp: i32, hp: i32, ip: &str| ContainerPort {
        name: name.map(Into::into),
        protocol: Some(proto.into()),
        container_port: cp,
        host_port: (hp != 0).then_some(hp),
        host_ip: (!ip.is_empty()).then(|| ip.into()),
    };
    let mut a = container("a");
    a.ports = Some(vec![
        port(None, "TCP", 80, 8080, "127.0.0.1"),
        port(Some("dns"), "UDP", 53, 0, ""),
        port(Some("dns"), "UDP", 54, 0, ""),
        port(None, "TCP", 80, 8080, "127.0.0.1"),
        port(None, "TCP", 80, 8080, "::"),
    ]);
    let mut b = container("b");
    b.ports = Some(vec![port(None, "SCTP", 9, 9, "")]);
    let c = pod_sandbox_config(
        &pod(PodSpec {
            containers: vec![a, b],
            ..Default::default()
        }),
        0,
        &opts(),
    )
    .unwrap();
    let got: Vec<_> = c
        .port_mappings
        .iter()
        .map(|p| {
            (
                p.protocol,
                p.container_port,
                p.host_port,
                p.host_ip.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Protocol::Tcp as i32, 80, 8080, "127.0.0.1"),
            (Protocol::Udp as i32, 53, 0, ""),
            (Protocol::Tcp as i32, 80, 8080, "::"),
            (Protocol::Sctp as i32, 9, 9, ""),
        ]
    );
}

#[test]
fn hostname_rules() {
    let long = "a".repeat(62) + "-b";
    let mut p = pod(PodSpec::default());
    p.metadata.name = Some(long);
    assert_eq!(
        pod_sandbox_config(&p, 0, &opts()).unwrap().hostname,
        "a".repeat(62),
        "cut to 63, trailing '-' dropped"
    );

    let p = pod(PodSpec {
        hostname: Some("db-0".into()),
        subdomain: Some("db".into()),
        ..Default::default()
    });
    assert_eq!(
        pod_hostname_and_domain(&p, "cluster.local").unwrap(),
        ("db-0".into(), "db.prod.svc.cluster.local".into())
    );
    assert_eq!(pod_sandbox_config(&p, 0, &opts()).unwrap().hostname, "db-0");
    let fqdn = pod(PodSpec {
        set_hostname_as_fqdn: Some(true),
        ..p.spec.clone().unwrap()
    });
    assert_eq!(
        pod_sandbox_config(&fqdn, 0, &opts()).unwrap().hostname,
        "db-0.db.prod.svc.cluster.local"
    );

    let bad = pod(PodSpec {
        hostname: Some("Bad_Name".into()),
        ..Default::default()
    });
    assert!(matches!(
        pod_sandbox_config(&bad, 0, &opts()),
        Err(SandboxConfigError::InvalidDnsLabel { .. })
    ));
}

#[test]
fn security_context_and_sysctls() {
    let mut privileged = container("init");
    privileged.security_context = Some(SecurityContext {
        privileged: Some(true),
        ..Default::default()
    });
    let p = pod(PodSpec {
        init_containers: Some(vec![privileged]),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            fs_group: Some(2000),
            supplemental_groups: Some(vec![4000]),
            sysctls: Some(vec![Sysctl {
                name: "net.core.somaxconn".into(),
                value: "1024".into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let c = pod_sandbox_config(&p, 0, &opts()).unwrap();
    let sc = security(&c);
    assert!(sc.privileged);
    assert_eq!(sc.run_as_user.map(|v| v.value), Some(1000));
    assert_eq!(sc.run_as_group.map(|v| v.value), Some(3000));
    assert_eq!(sc.supplemental_groups, [2000, 4000]);
    assert_eq!(
        c.linux.as_ref().unwrap().sysctls["net.core.somaxconn"],
        "1024"
    );
}

#[test]
fn pod_resources_and_overhead() {
    let res = |req: &[(&str, &str)], lim: &[(&str, &str)]| {
        let list = |items: &[(&str, &str)]| {
            Some(
                items
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            )
        };
        Some(ResourceRequirements {
            requests: list(req),
            limits: list(lim),
            ..Default::default()
        })
    };
    let mut a = container("a");
    a.resources = res(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "128Mi")]);
    let mut b = container("b");
    b.resources = res(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "128Mi")]);
    let mut init = container("init");
    init.resources = res(&[("cpu", "2")], &[("cpu", "2")]);
    let mut p = pod(PodSpec {
        containers: vec![a, b],
        init_containers: Some(vec![init]),
        ..Default::default()
    });
    p.spec.as_mut().unwrap().overhead = Some(BTreeMap::from([
        ("cpu".into(), Quantity("100m".into())),
        ("memory".into(), Quantity("10Mi".into())),
    ]));
    let c = pod_sandbox_config(&p, 0, &opts()).unwrap();
    let linux = c.linux.unwrap();
    let r = linux.resources.unwrap();
    // The init container's 2 cpus exceed the containers' 500m request and 1 cpu limit.
    assert_eq!(
        (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
        (2048, 200_000, 256 << 20)
    );
    let o = linux.overhead.unwrap();
    assert_eq!(
        (o.cpu_shares, o.cpu_quota, o.memory_limit_in_bytes),
        (102, 10_000, 10 << 20)
    );
}
