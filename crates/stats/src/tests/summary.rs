use super::fixture::{CONTAINER, NAMESPACE, POD, UID, fixture, fixture_with_cgroups, pod, write};
use crate::provider::nano_cores_between;
use serde_json::Value;
use std::time::Duration;
use tempfile::TempDir;

fn number(value: &Value, pointer: &str) -> u64 {
    value
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {value:#}"))
}

#[tokio::test(start_paused = true)]
async fn json_uses_upstream_field_names() {
    let f = fixture().await;
    tokio::time::advance(Duration::from_secs(5)).await;
    let summary = f
        .provider
        .summary(&f.fake, "node-a", &[])
        .await
        .expect("summary");
    let json = serde_json::to_value(&summary).expect("json");

    assert_eq!(json["node"]["nodeName"], "node-a");
    for key in ["startTime", "cpu", "memory", "fs", "runtime", "rlimit"] {
        assert!(json["node"].get(key).is_some(), "node.{key} in {json:#}");
    }
    assert!(json["node"]["runtime"].get("imageFs").is_some());
    let pod = &json["pods"][0];
    assert_eq!(pod["podRef"]["name"], POD);
    assert_eq!(pod["podRef"]["namespace"], NAMESPACE);
    assert_eq!(pod["podRef"]["uid"], UID);
    assert!(pod.get("ephemeral-storage").is_some(), "{pod:#}");
    let container = &pod["containers"][0];
    assert_eq!(container["name"], CONTAINER);
    for key in ["startTime", "cpu", "memory", "rootfs", "logs"] {
        assert!(
            container.get(key).is_some(),
            "container.{key} in {container:#}"
        );
    }
    for key in [
        "workingSetBytes",
        "usageBytes",
        "rssBytes",
        "pageFaults",
        "majorPageFaults",
    ] {
        number(container, &format!("/memory/{key}"));
    }
    // metav1.Time: RFC 3339 in UTC, whole seconds.
    let time = container["cpu"]["time"].as_str().expect("time string");
    assert!(time.ends_with('Z') && !time.contains('.'), "{time}");
    assert!(number(container, "/logs/usedBytes") >= 8192);
    assert_eq!(
        number(pod, "/memory/workingSetBytes"),
        number(container, "/memory/workingSetBytes"),
        "one container: the pod's memory is the container's"
    );
}

#[tokio::test(start_paused = true)]
async fn pod_cpu_rate_comes_from_two_samples() {
    let f = fixture().await;
    tokio::time::advance(Duration::from_secs(2)).await;
    let first = f
        .provider
        .summary(&f.fake, "node-a", &[])
        .await
        .expect("first");
    let pod_cpu = first.pods[0].cpu.as_ref().expect("pod cpu");
    assert_eq!(pod_cpu.usage_nano_cores, None, "no earlier sample yet");
    let used_before = pod_cpu.usage_core_nano_seconds.expect("cumulative");

    tokio::time::advance(Duration::from_secs(10)).await;
    let second = f
        .provider
        .summary(&f.fake, "node-a", &[])
        .await
        .expect("second");
    let pod_cpu = second.pods[0].cpu.as_ref().expect("pod cpu");
    let used_after = pod_cpu.usage_core_nano_seconds.expect("cumulative");
    assert!(used_after > used_before);
    let expected = (used_after - used_before) / 10;
    assert_eq!(pod_cpu.usage_nano_cores, Some(expected));
    assert!(
        second
            .node
            .cpu
            .as_ref()
            .and_then(|c| c.usage_nano_cores)
            .is_some(),
        "the node has a rate from its second sample on"
    );
}

#[test]
fn rate_needs_time_to_pass_and_usage_not_to_go_back() {
    assert_eq!(
        nano_cores_between((0, 0), (1_000_000_000, 500_000_000)),
        Some(500_000_000)
    );
    assert_eq!(nano_cores_between((5, 10), (5, 20)), None, "no time passed");
    assert_eq!(nano_cores_between((0, 10), (10, 5)), None, "counter reset");
}

#[tokio::test(start_paused = true)]
async fn node_figures_from_this_machine_are_positive() {
    let f = fixture().await;
    let summary = f
        .provider
        .summary(&f.fake, "node-a", &[])
        .await
        .expect("summary");
    let node = &summary.node;
    assert!(node.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds) > Some(0));
    let memory = node.memory.as_ref().expect("memory");
    assert!(memory.usage_bytes > Some(0));
    assert!(memory.working_set_bytes > Some(0));
    assert!(memory.available_bytes > Some(0));
    assert!(memory.working_set_bytes <= memory.usage_bytes);
    let fs = node.fs.as_ref().expect("fs");
    assert!(fs.capacity_bytes > Some(0) && fs.available_bytes <= fs.capacity_bytes);
    let rlimit = node.rlimit.as_ref().expect("rlimit");
    assert!(rlimit.maxpid > Some(0) && rlimit.curproc > Some(0));
    assert!(node.start_time.0 > 0);
}

#[tokio::test(start_paused = true)]
async fn stopped_containers_have_no_stats() {
    let f = fixture().await;
    f.fake.exit_container(&f.container_id, 0);
    let summary = f
        .provider
        .summary(&f.fake, "node-a", &[])
        .await
        .expect("summary");
    assert!(summary.pods[0].containers.is_empty());
    assert!(summary.pods[0].cpu.is_none());
}

#[tokio::test(start_paused = true)]
async fn node_memory_and_cpu_come_from_the_root_cgroups() {
    let cgroups = TempDir::new().expect("temp dir");
    let root = cgroups.path();
    write(&root.join("cpuacct/cpuacct.usage"), "123456789\n");
    write(&root.join("memory/memory.usage_in_bytes"), "1000000\n");
    write(
        &root.join("memory/memory.stat"),
        "cache 5\nrss 6\ntotal_inactive_file 300000\ntotal_rss 200000\ntotal_pgfault 42\ntotal_pgmajfault 7\n",
    );
    let f = fixture_with_cgroups(root.to_path_buf()).await;
    let summary = f
        .provider
        .summary(&f.fake, "node-a", &[])
        .await
        .expect("summary");
    let cpu = summary.node.cpu.as_ref().expect("cpu");
    assert_eq!(cpu.usage_core_nano_seconds, Some(123456789));
    let memory = summary.node.memory.as_ref().expect("memory");
    assert_eq!(memory.usage_bytes, Some(1000000));
    assert_eq!(
        memory.working_set_bytes,
        Some(700000),
        "usage minus inactive file"
    );
    assert_eq!(memory.rss_bytes, Some(200000));
    assert_eq!(memory.page_faults, Some(42));
    assert_eq!(memory.major_page_faults, Some(7));
}

#[test]
fn node_memory_and_cpu_on_cgroup_v2() {
    let cgroups = TempDir::new().expect("temp dir");
    let root = cgroups.path();
    write(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    write(
        &root.join("cpu.stat"),
        "usage_usec 123456\nuser_usec 100000\n",
    );
    write(
        &root.join("memory.stat"),
        "anon 200000\nfile 500000\ninactive_file 300000\npgfault 42\npgmajfault 7\n",
    );
    let proc = TempDir::new().expect("temp dir");
    write(
        &proc.path().join("meminfo"),
        "MemTotal:        2000 kB\nMemFree:         1000 kB\nMemAvailable:    1500 kB\n",
    );
    assert!(crate::host::is_unified(root));
    assert_eq!(
        crate::host::cpu_usage_nanos(root, true).unwrap(),
        123_456_000
    );
    let memory = crate::host::memory(root, true, proc.path()).unwrap();
    assert_eq!(
        memory,
        crate::host::NodeMemory {
            total_bytes: 2_048_000,
            // MemTotal - MemFree: the v2 root has no memory.current.
            usage_bytes: 1_024_000,
            working_set_bytes: 724_000,
            rss_bytes: 200_000,
            page_faults: 42,
            major_page_faults: 7,
        }
    );
}

/// The pod's network as read through the first process of the cgroup of `owner` (its sandbox,
/// or a container where the runtime runs no sandbox process); this test process stands in for
/// it, so the netns is the host's. On v2 the cgroup is in the unified hierarchy.
async fn pod_network_through(owner: fn(&super::fixture::Fixture) -> &str, unified: bool) {
    let cgroups = TempDir::new().expect("temp dir");
    let root = cgroups.path();
    let hierarchy = if unified {
        write(&root.join("cgroup.controllers"), "cpu memory\n");
        write(&root.join("cpu.stat"), "usage_usec 1\n");
        write(&root.join("memory.stat"), "inactive_file 0\n");
        root.to_path_buf()
    } else {
        write(&root.join("cpuacct/cpuacct.usage"), "1\n");
        write(&root.join("memory/memory.usage_in_bytes"), "1\n");
        write(&root.join("memory/memory.stat"), "total_inactive_file 0\n");
        root.join("memory")
    };
    let f = fixture_with_cgroups(root.to_path_buf()).await;
    write(
        &hierarchy
            .join(format!("kubepods/besteffort/pod{UID}"))
            .join(owner(&f))
            .join("cgroup.procs"),
        &format!("{}\n", std::process::id()),
    );
    let summary = f
        .provider
        .summary(&f.fake, "node-a", &[pod()])
        .await
        .expect("summary");
    let json = serde_json::to_value(&summary).expect("json");
    let network = &json["pods"][0]["network"];
    let interfaces = network["interfaces"].as_array().expect("interfaces");
    let host = std::fs::read_to_string("/proc/net/dev").expect("net dev");
    let host_has_interfaces = host
        .lines()
        .skip(2)
        .any(|l| !l.trim_start().starts_with("lo:"));
    assert_eq!(!interfaces.is_empty(), host_has_interfaces, "{json:#}");
    if host_has_interfaces {
        for key in ["name", "rxBytes", "txBytes", "rxErrors", "txErrors"] {
            assert!(network.get(key).is_some(), "network.{key} in {network:#}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn pod_network_comes_from_its_sandbox_process() {
    pod_network_through(|f| &f.sandbox_id, false).await;
}

#[tokio::test(start_paused = true)]
async fn pod_network_without_a_sandbox_process_comes_from_a_container() {
    pod_network_through(|f| &f.container_id, false).await;
}

#[tokio::test(start_paused = true)]
async fn pod_network_on_cgroup_v2_comes_from_the_unified_hierarchy() {
    pod_network_through(|f| &f.sandbox_id, true).await;
}

#[tokio::test(start_paused = true)]
async fn volumes_are_measured_under_the_pod_dir() {
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, Volume};

    let f = fixture().await;
    let cache = f
        .root_path()
        .join(format!("pods/{UID}/volumes/kubernetes.io~empty-dir/cache"));
    write(&cache.join("data"), &"x".repeat(10_000));
    let mut with_volumes = pod();
    let volume = |name: &str| Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    };
    with_volumes.spec = Some(PodSpec {
        // "unmounted" has no directory yet, so no stats.
        volumes: Some(vec![volume("cache"), volume("unmounted")]),
        ..Default::default()
    });
    let summary = f
        .provider
        .summary(&f.fake, "node-a", &[with_volumes])
        .await
        .expect("summary");
    let json = serde_json::to_value(&summary).expect("json");
    let volumes = json["pods"][0]["volume"].as_array().expect("volume list");
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["name"], "cache");
    assert!(number(&volumes[0], "/usedBytes") >= 10_000);
    assert!(number(&volumes[0], "/capacityBytes") > 0);
    assert!(
        number(&volumes[0], "/inodesUsed") >= 2,
        "the dir and its file"
    );
    let container = &json["pods"][0]["containers"][0];
    assert_eq!(
        number(&json["pods"][0], "/ephemeral-storage/usedBytes"),
        number(container, "/rootfs/usedBytes")
            + number(container, "/logs/usedBytes")
            + number(&volumes[0], "/usedBytes"),
        "writable layer, logs and the emptyDir"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_cgroup_files_leave_out_the_node_figures_not_the_pods() {
    let empty = TempDir::new().expect("temp dir");
    let f = fixture_with_cgroups(empty.path().to_path_buf()).await;
    let summary = f
        .provider
        .summary(&f.fake, "node-a", &[])
        .await
        .expect("summary");
    assert!(summary.node.cpu.is_none());
    assert!(summary.node.memory.is_none());
    assert!(
        summary.node.rlimit.is_some(),
        "read from /proc, not the cgroups"
    );
    assert_eq!(summary.pods.len(), 1);
    assert!(summary.pods[0].containers[0].cpu.is_some());
}

#[test]
fn container_cgroups_follow_the_cgroup_driver() {
    use crate::provider::{StatsConfig, StatsProvider};
    use kubelet_kuberuntime::qos::CgroupDriver;
    let mount = TempDir::new().expect("temp dir");
    let slice = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poduid_web.slice";
    let scope = mount
        .path()
        .join("memory")
        .join(&slice[1..])
        .join("cri-containerd-abc.scope");
    std::fs::create_dir_all(scope).expect("scope dir");
    let provider = |cgroup_driver| {
        StatsProvider::new(StatsConfig {
            cgroup_mount: mount.path().to_path_buf(),
            pod_cgroup_root: "/".to_string(),
            cgroups_per_qos: true,
            cgroup_driver,
            proc_root: "/proc".into(),
            root_dir: mount.path().to_path_buf(),
            pod_logs_dir: mount.path().to_path_buf(),
            image_fs_from_cri: false,
        })
    };
    assert_eq!(
        provider(CgroupDriver::Systemd).container_cgroup(&pod(), "abc"),
        format!("{slice}/cri-containerd-abc.scope")
    );
    assert_eq!(
        provider(CgroupDriver::Cgroupfs).container_cgroup(&pod(), "abc"),
        format!("/kubepods/besteffort/pod{UID}/abc")
    );
}

#[tokio::test(start_paused = true)]
async fn driver_figures_are_a_pods_csi_volumes() {
    use crate::VolumeStatsCache;
    use crate::types::{FsStats, PvcReference, Timestamp, VolumeStats};
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, PodSpec, Volume};
    use std::collections::HashMap;

    let mut f = fixture().await;
    let cache = VolumeStatsCache::default();
    f.provider = f.provider.with_driver_volumes(cache.clone());
    // The published volume's dir, named like the pod's volume: never measured by the kubelet.
    write(
        &f.root_path().join(format!(
            "pods/{UID}/volumes/kubernetes.io~csi/data/mount/file"
        )),
        "x",
    );
    let mut with_claim = pod();
    with_claim.spec = Some(PodSpec {
        volumes: Some(vec![Volume {
            name: "data".to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "claim".to_string(),
                read_only: None,
            }),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let summary = |pod: Pod| {
        let f = &f;
        async move {
            let summary = f
                .provider
                .summary(&f.fake, "node-a", &[pod])
                .await
                .expect("summary");
            serde_json::to_value(&summary).expect("json")
        }
    };
    let json = summary(with_claim.clone()).await;
    assert!(json["pods"][0].get("volume").is_none(), "{json:#}");

    let figures = VolumeStats {
        fs: FsStats {
            time: Timestamp(0),
            capacity_bytes: Some(100),
            available_bytes: Some(60),
            used_bytes: Some(40),
            inodes: Some(10),
            inodes_free: Some(7),
            inodes_used: Some(3),
        },
        name: "data".to_string(),
        pvc_ref: Some(PvcReference {
            name: "claim".to_string(),
            namespace: NAMESPACE.to_string(),
        }),
        volume_health_stats: None,
    };
    cache.store(HashMap::from([(UID.to_string(), vec![figures])]));
    let json = summary(with_claim).await;
    assert_eq!(
        json["pods"][0]["volume"],
        serde_json::json!([{
            "time": "1970-01-01T00:00:00Z",
            "capacityBytes": 100, "availableBytes": 60, "usedBytes": 40,
            "inodes": 10, "inodesFree": 7, "inodesUsed": 3,
            "name": "data",
            "pvcRef": {"name": "claim", "namespace": NAMESPACE},
        }]),
        "{json:#}"
    );
    cache.forget_pod(UID);
    let json = summary(pod()).await;
    assert!(json["pods"][0].get("volume").is_none(), "{json:#}");
}
