//! Mounts and propagation, namespaces per mode, resources, annotations, the bundle.

use super::{Case, linux, mount, options};
use k8s_cri::v1::{
    HugepageLimit, LinuxContainerResources, Mount as CriMount, MountPropagation, NamespaceMode,
    NamespaceOption,
};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::PathBuf;

#[test]
fn default_mounts_and_sandbox_files() {
    let mut c = Case::new();
    let dir = tempfile::tempdir().expect("tmp");
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(dir.path().join(f), "x\n").expect("file");
    }
    std::fs::create_dir(dir.path().join("shm")).expect("shm");
    c.files.hostname = Some(dir.path().join("hostname"));
    c.files.hosts = Some(dir.path().join("hosts"));
    c.files.resolv_conf = Some(dir.path().join("resolv.conf"));
    let spec = c.spec();
    for (dest, typ) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
        ("/sys/fs/cgroup", "cgroup"),
        ("/etc/hostname", "bind"),
        ("/etc/hosts", "bind"),
        ("/etc/resolv.conf", "bind"),
    ] {
        let m = mount(&spec, dest).unwrap_or_else(|| panic!("no {dest} mount"));
        assert_eq!(m.typ().as_deref(), Some(typ), "{dest}");
    }
    assert!(mount(&spec, "/run").is_none());
    assert_eq!(
        mount(&spec, "/etc/hosts").and_then(|m| m.source().clone()),
        Some(std::fs::canonicalize(dir.path().join("hosts")).expect("canon"))
    );
    c.files.shm = Some(dir.path().join("shm"));
    let spec = c.spec();
    assert_eq!(
        mount(&spec, "/dev/shm")
            .and_then(|m| m.typ().clone())
            .as_deref(),
        Some("bind")
    );
}

fn cri_mount(container: &str, host: &std::path::Path, p: MountPropagation, ro: bool) -> CriMount {
    CriMount {
        container_path: container.into(),
        host_path: host.to_string_lossy().into_owned(),
        readonly: ro,
        selinux_relabel: true,
        propagation: p as i32,
        ..Default::default()
    }
}

#[test]
fn cri_mounts_with_propagation_and_readonly() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = Case::new();
    c.container.mounts = vec![
        cri_mount(
            "/data/deep/x",
            dir.path(),
            MountPropagation::PropagationPrivate,
            true,
        ),
        cri_mount(
            "/data",
            dir.path(),
            MountPropagation::PropagationHostToContainer,
            false,
        ),
        cri_mount(
            "/new",
            &dir.path().join("created"),
            MountPropagation::PropagationPrivate,
            false,
        ),
    ];
    let spec = c.spec();
    assert_eq!(
        options(mount(&spec, "/data/deep/x").expect("x")),
        ["rbind", "rprivate", "ro"]
    );
    assert_eq!(
        options(mount(&spec, "/data").expect("data")),
        ["rbind", "rslave", "rw"]
    );
    assert!(
        dir.path().join("created").is_dir(),
        "missing host path is created"
    );
    assert_eq!(linux(&spec).rootfs_propagation().as_deref(), Some("rslave"));
    let order: Vec<PathBuf> = spec
        .mounts()
        .clone()
        .expect("mounts")
        .iter()
        .map(|m| m.destination().clone())
        .collect();
    let pos = |p: &str| {
        order
            .iter()
            .position(|d| d.to_str() == Some(p))
            .expect("present")
    };
    assert!(
        pos("/data") < pos("/data/deep/x"),
        "parents first: {order:?}"
    );

    c.container.mounts.push(cri_mount(
        "/shared",
        dir.path(),
        MountPropagation::PropagationBidirectional,
        false,
    ));
    let spec = c.spec();
    assert_eq!(
        options(mount(&spec, "/shared").expect("shared")),
        ["rbind", "rshared", "rw"]
    );
    assert_eq!(
        linux(&spec).rootfs_propagation().as_deref(),
        Some("rshared")
    );
}

#[test]
fn recursive_read_only_mounts_are_checked_as_containerd_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let rro = |p: MountPropagation, ro: bool| CriMount {
        recursive_read_only: true,
        ..cri_mount("/ro", dir.path(), p, ro)
    };
    let mut c = Case::new();
    c.container.mounts = vec![rro(MountPropagation::PropagationPrivate, true)];
    assert_eq!(
        options(mount(&c.spec(), "/ro").expect("ro")),
        ["rbind", "rprivate", "ro", "rro"]
    );

    for (mount, why) in [
        (
            rro(MountPropagation::PropagationPrivate, false),
            "invalid mount of /ro: recursive read-only needs readonly to be true",
        ),
        (
            rro(MountPropagation::PropagationHostToContainer, true),
            "invalid mount of /ro: recursive read-only needs private propagation, not PROPAGATION_HOST_TO_CONTAINER",
        ),
        (
            rro(MountPropagation::PropagationBidirectional, true),
            "invalid mount of /ro: recursive read-only needs private propagation, not PROPAGATION_BIDIRECTIONAL",
        ),
    ] {
        c.container.mounts = vec![mount];
        assert_eq!(c.build().expect_err(why).to_string(), why);
    }

    c.recursive_read_only = false;
    c.container.mounts = vec![rro(MountPropagation::PropagationPrivate, true)];
    assert_eq!(
        c.build().expect_err("no rro").to_string(),
        "not supported: recursive read-only mount of /ro: the OCI runtime does not support rro"
    );
}

#[test]
fn cri_mounts_replace_defaults_and_sandbox_files() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("hosts"), "sandbox\n").expect("hosts");
    std::fs::write(dir.path().join("mine"), "mine\n").expect("mine");
    let mut c = Case::new();
    c.files.hosts = Some(dir.path().join("hosts"));
    c.container.mounts = vec![
        cri_mount(
            "/etc/hosts",
            &dir.path().join("mine"),
            MountPropagation::PropagationPrivate,
            false,
        ),
        cri_mount(
            "/dev",
            dir.path(),
            MountPropagation::PropagationPrivate,
            false,
        ),
    ];
    let spec = c.spec();
    let hosts: Vec<_> = spec
        .mounts()
        .clone()
        .expect("m")
        .into_iter()
        .filter(|m| m.destination().to_str() == Some("/etc/hosts"))
        .collect();
    assert_eq!(hosts.len(), 1);
    assert!(
        hosts[0]
            .source()
            .as_ref()
            .is_some_and(|s| s.ends_with("mine"))
    );
    assert!(mount(&spec, "/dev/pts").is_none() && mount(&spec, "/dev/shm").is_none());
    assert_eq!(
        mount(&spec, "/dev")
            .and_then(|m| m.typ().clone())
            .as_deref(),
        Some("bind")
    );
}

fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    linux(spec)
        .namespaces()
        .clone()
        .expect("ns")
        .iter()
        .map(|n| (n.typ(), n.path().clone()))
        .collect()
}

fn set_pid_mode(c: &mut Case, mode: NamespaceMode) {
    c.security().namespace_options = Some(NamespaceOption {
        pid: mode as i32,
        ..Default::default()
    });
}

#[test]
fn namespaces_joined_or_new_per_mode() {
    let mut c = Case::new();
    c.namespaces.net = Some("/run/x/net".into());
    c.namespaces.ipc = Some("/run/x/ipc".into());
    c.namespaces.uts = Some("/run/x/uts".into());
    c.namespaces.pid = Some("/proc/42/ns/pid".into());
    set_pid_mode(&mut c, NamespaceMode::Pod);
    let spec = c.spec();
    let ns = namespaces(&spec);
    assert!(ns.contains(&(LinuxNamespaceType::Mount, None)));
    assert!(ns.contains(&(LinuxNamespaceType::Network, Some("/run/x/net".into()))));
    assert!(ns.contains(&(LinuxNamespaceType::Ipc, Some("/run/x/ipc".into()))));
    assert!(ns.contains(&(LinuxNamespaceType::Uts, Some("/run/x/uts".into()))));
    assert!(ns.contains(&(LinuxNamespaceType::Pid, Some("/proc/42/ns/pid".into()))));
    assert!(
        spec.hostname().is_none(),
        "a joined UTS namespace keeps its hostname"
    );

    set_pid_mode(&mut c, NamespaceMode::Container);
    assert!(namespaces(&c.spec()).contains(&(LinuxNamespaceType::Pid, None)));
    set_pid_mode(&mut c, NamespaceMode::Node);
    assert!(
        !namespaces(&c.spec())
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Pid)
    );
}

#[test]
fn new_namespaces_and_hostname_without_paths() {
    let spec = Case::new().spec();
    let ns = namespaces(&spec);
    for t in [
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Pid,
    ] {
        assert!(ns.contains(&(t, None)), "{t:?}");
    }
    assert_eq!(spec.hostname().as_deref(), Some("pod-host"));
}

#[test]
fn host_namespaces_from_the_sandbox_security_context() {
    let mut c = Case::new();
    c.namespaces.net = Some("/ignored/net".into());
    c.sandbox_security().namespace_options = Some(NamespaceOption {
        network: NamespaceMode::Node as i32,
        ipc: NamespaceMode::Node as i32,
        pid: NamespaceMode::Node as i32,
        ..Default::default()
    });
    let ns = namespaces(&c.spec());
    for t in [
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Pid,
    ] {
        assert!(
            !ns.iter().any(|(x, _)| *x == t),
            "{t:?} must be the host's: {ns:?}"
        );
    }
}

#[test]
fn resources_and_pids_limit() {
    let mut c = Case::new();
    c.container
        .linux
        .get_or_insert_with(Default::default)
        .resources = Some(LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 256,
        memory_limit_in_bytes: 64 << 20,
        cpuset_cpus: "0".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 20,
        }],
        unified: [("memory.high".to_string(), "max".to_string())].into(),
        ..Default::default()
    });
    c.pids_limit = Some(128);
    let spec = c.spec();
    let r = linux(&spec).resources().clone().expect("resources");
    let cpu = r.cpu().clone().expect("cpu");
    assert_eq!(
        (cpu.period(), cpu.quota(), cpu.shares()),
        (Some(100_000), Some(50_000), Some(256))
    );
    assert_eq!(
        (cpu.cpus().as_deref(), cpu.mems().as_deref()),
        (Some("0"), Some("0"))
    );
    let mem = r.memory().expect("memory");
    assert_eq!(mem.limit(), Some(64 << 20));
    let support = crate::resources::CgroupSupport::probe();
    assert_eq!(mem.swap(), support.swap.then_some(64 << 20));
    assert_eq!(
        r.hugepage_limits().as_ref().map(|h| h.len()),
        support.hugetlb.then_some(1)
    );
    assert_eq!(
        r.unified()
            .as_ref()
            .and_then(|u| u.get("memory.high"))
            .map(String::as_str),
        Some("max")
    );
    assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(128));
    assert_eq!(
        linux(&spec)
            .cgroups_path()
            .as_ref()
            .and_then(|p| p.to_str()),
        Some("/kubelet-rs-test/c1")
    );
}

#[test]
fn cri_annotations_as_containerd_sets_them() {
    let spec = Case::new().spec();
    let a = spec.annotations().clone().expect("annotations");
    for (k, v) in [
        ("io.kubernetes.cri.container-type", "container"),
        ("io.kubernetes.cri.sandbox-id", "s1"),
        ("io.kubernetes.cri.sandbox-name", "pod"),
        ("io.kubernetes.cri.sandbox-namespace", "ns"),
        ("io.kubernetes.cri.sandbox-uid", "uid-1"),
        ("io.kubernetes.cri.container-name", "app"),
        ("io.kubernetes.cri.image-name", "localhost/busybox:1.35"),
    ] {
        assert_eq!(a.get(k).map(String::as_str), Some(v), "{k}");
    }
}

#[test]
fn write_bundle_round_trips_config_json() {
    let c = Case::new();
    let spec = c.spec();
    let dir = tempfile::tempdir().expect("tmp");
    let bundle = dir.path().join("bundle");
    crate::write_bundle(&bundle, &spec).expect("write");
    let text = std::fs::read_to_string(bundle.join("config.json")).expect("read");
    let back: Spec = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, spec);
    let leftovers: Vec<_> = std::fs::read_dir(&bundle).expect("ls").collect();
    assert_eq!(leftovers.len(), 1, "only config.json, no temp files");
}

#[test]
fn nothing_from_oci_spec_defaults_leaks_in() {
    let mut c = Case::new();
    c.namespaces.uts = Some("/run/x/uts".into());
    let spec = c.spec();
    let json = serde_json::to_string_pretty(&spec).expect("json");
    assert!(!json.contains("youki"), "{json}");
    assert!(!json.contains("RLIMIT"), "{json}");
    assert!(
        spec.process()
            .as_ref()
            .is_some_and(|p| p.rlimits().is_none())
    );
}
