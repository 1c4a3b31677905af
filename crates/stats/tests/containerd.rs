//! The Summary and /metrics/resource of a real pod on the test containerd, cross-checked with
//! the container's cgroup files.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_cri::RuntimeService;
use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxPodSandboxConfig, PodSandboxConfig,
    PodSandboxMetadata,
};
use kubelet_stats::{StatsConfig, StatsProvider, resource_metrics};
use kubelet_testkit::POD_UID_LABEL;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NAMESPACE: &str = "stats";
const POD: &str = "burner";
const CONTAINER: &str = "spin";

fn labels(uid: &str) -> HashMap<String, String> {
    HashMap::from([
        (POD_UID_LABEL.to_string(), uid.to_string()),
        ("io.kubernetes.pod.name".to_string(), POD.to_string()),
        (
            "io.kubernetes.pod.namespace".to_string(),
            NAMESPACE.to_string(),
        ),
    ])
}

fn cgroup_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("number")
}

fn inactive_file(memory_cgroup: &Path) -> u64 {
    let stat = std::fs::read_to_string(memory_cgroup.join("memory.stat")).expect("memory.stat");
    stat.lines()
        .find_map(|l| l.strip_prefix("total_inactive_file "))
        .expect("total_inactive_file")
        .parse()
        .expect("number")
}

#[tokio::test]
async fn summary_of_a_running_pod_matches_its_cgroups() {
    let rt = kubelet_testkit::containerd();
    let runtime = rt.connect().await;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let uid = format!("stats-{}-{nanos:09}", std::process::id());
    let _guard = rt.pod_guard(&uid);
    let root = rt.temp_dir("stats");
    let logs = root.path().join("pods");
    let log_dir = logs.join(format!("{NAMESPACE}_{POD}_{uid}"));
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let cgroup_parent = rt.pod_cgroup_parent(&uid);

    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: POD.to_string(),
            uid: uid.clone(),
            namespace: NAMESPACE.to_string(),
            attempt: 0,
        }),
        hostname: POD.to_string(),
        log_directory: log_dir.display().to_string(),
        labels: labels(&uid),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = runtime
        .run_pod_sandbox(sandbox_config.clone(), "")
        .await
        .expect("sandbox");
    let mut container_labels = labels(&uid);
    container_labels.insert(
        "io.kubernetes.container.name".to_string(),
        CONTAINER.to_string(),
    );
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: CONTAINER.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "localhost/busybox:1.35".to_string(),
            ..Default::default()
        }),
        // One busy core, so the CPU rate is unmistakable.
        command: vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "echo started; while :; do :; done".to_string(),
        ],
        log_path: format!("{CONTAINER}/0.log"),
        labels: container_labels,
        ..Default::default()
    };
    let id = runtime
        .create_container(&sandbox, config, sandbox_config)
        .await
        .expect("create");
    runtime.start_container(&id).await.expect("start");

    // With QoS cgroups off the pods' cgroup is the root itself, which is how the test runtime
    // lays out its pods.
    let provider = StatsProvider::new(StatsConfig {
        cgroup_mount: "/sys/fs/cgroup".into(),
        proc_root: "/proc".into(),
        pod_cgroup_root: cgroup_parent.clone(),
        cgroups_per_qos: false,
        cgroup_driver: Default::default(),
        root_dir: root.path().to_path_buf(),
        pod_logs_dir: logs,
        image_fs_from_cri: true,
    });
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(POD.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            uid: Some(uid.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let pods = [pod];
    tokio::time::sleep(Duration::from_secs(1)).await;
    provider
        .summary(&runtime, "node-a", &pods)
        .await
        .expect("first summary");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary = provider
        .summary(&runtime, "node-a", &pods)
        .await
        .expect("second summary");
    let cgroup = cgroup_parent.trim_start_matches('/');
    let cpuacct = Path::new("/sys/fs/cgroup/cpuacct").join(cgroup).join(&id);
    let memory_cgroup = Path::new("/sys/fs/cgroup/memory").join(cgroup).join(&id);
    let cpu_after = cgroup_u64(&cpuacct.join("cpuacct.usage"));
    let usage_now = cgroup_u64(&memory_cgroup.join("memory.usage_in_bytes"));
    let working_set_now = usage_now.saturating_sub(inactive_file(&memory_cgroup));

    let pod_stats = summary
        .pods
        .iter()
        .find(|p| p.pod_ref.uid == uid)
        .expect("our pod in the summary");
    let container = pod_stats
        .containers
        .iter()
        .find(|c| c.name == CONTAINER)
        .expect("our container");
    let cpu = container.cpu.as_ref().expect("cpu");
    let used = cpu.usage_core_nano_seconds.expect("cumulative cpu");
    assert!(
        used > 0 && used <= cpu_after,
        "summary {used} ns, cgroup now {cpu_after} ns"
    );
    assert!(
        cpu_after - used < 1_000_000_000,
        "the summary's figure is recent: summary {used} ns, cgroup now {cpu_after} ns"
    );
    let nano_cores = cpu.usage_nano_cores.expect("a rate from the second sample");
    assert!(
        (300_000_000..=1_200_000_000).contains(&nano_cores),
        "one busy loop uses about a core: {nano_cores}"
    );

    let memory = container.memory.as_ref().expect("memory");
    let working_set = memory.working_set_bytes.expect("working set");
    assert!(
        working_set.abs_diff(working_set_now) < 1 << 20,
        "summary {working_set} B, cgroup {working_set_now} B"
    );
    assert_eq!(
        pod_stats.memory.as_ref().and_then(|m| m.working_set_bytes),
        Some(working_set)
    );
    assert!(container.logs.as_ref().and_then(|l| l.used_bytes) > Some(0));
    assert!(container.rootfs.as_ref().and_then(|r| r.capacity_bytes) > Some(0));
    let network = pod_stats.network.as_ref().expect("pod network");
    assert!(
        network.interfaces.iter().any(|i| i.name == "eth0"),
        "the CNI bridge gives the pod eth0: {network:?}"
    );

    let text = resource_metrics(Some(&summary));
    let series = format!(
        "container_cpu_usage_seconds_total{{container=\"{CONTAINER}\",namespace=\"{NAMESPACE}\",pod=\"{POD}\"}} "
    );
    assert!(text.contains(&series), "{series} in\n{text}");
}
