//! ContainerStats and PodSandboxStats against the cgroup files and /proc read directly: memory
//! figures exact, CPU cumulative, monotonic and its nano-cores the rate between two samples,
//! process count, network counters of the pod's eth0, writable layer bytes and inodes.

use super::{assert_clean, container, create, pod, remove_pod, run_pod, start, stop_pod};
use crate::fixture::Fixture;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use runtime_service::Runtime;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::Request;

/// Only a guard against a hang: each figure settles within milliseconds.
const SETTLE: Duration = Duration::from_secs(30);

fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
}

/// The directory of `controller` for the cgroup at `relative` (v1), or the unified one (v2).
fn cgroup_dir(controller: &str, relative: &str) -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    let root = if unified() {
        root.to_path_buf()
    } else {
        root.join(controller)
    };
    root.join(relative.trim_start_matches('/'))
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Memory figures as the kernel has them: usage, working set, RSS, page faults, major faults.
fn memory_files(relative: &str) -> [u64; 5] {
    let dir = cgroup_dir("memory", relative);
    let stat = read(dir.join("memory.stat"));
    let (usage, inactive, rss, faults, major) = if unified() {
        let usage = read(dir.join("memory.current"));
        (usage, "inactive_file", "anon", "pgfault", "pgmajfault")
    } else {
        let usage = read(dir.join("memory.usage_in_bytes"));
        (
            usage,
            "total_inactive_file",
            "total_rss",
            "total_pgfault",
            "total_pgmajfault",
        )
    };
    let usage: u64 = usage.trim().parse().unwrap();
    [
        usage,
        usage.saturating_sub(field(&stat, inactive)),
        field(&stat, rss),
        field(&stat, faults),
        field(&stat, major),
    ]
}

fn memory_figures(m: &MemoryUsage) -> [u64; 5] {
    let v = |x: &Option<UInt64Value>| x.as_ref().expect("every memory figure").value;
    [
        v(&m.usage_bytes),
        v(&m.working_set_bytes),
        v(&m.rss_bytes),
        v(&m.page_faults),
        v(&m.major_page_faults),
    ]
}

fn cpu_file(relative: &str) -> u64 {
    if unified() {
        field(
            &read(cgroup_dir("cpu", relative).join("cpu.stat")),
            "usage_usec",
        ) * 1000
    } else {
        read(cgroup_dir("cpuacct", relative).join("cpuacct.usage"))
            .trim()
            .parse()
            .unwrap()
    }
}

fn pids_file(relative: &str) -> u64 {
    read(cgroup_dir("pids", relative).join("pids.current"))
        .trim()
        .parse()
        .unwrap()
}

/// Bytes received and sent on eth0 as a process in the pod's network namespace sees them.
fn eth0_files(pid: u64) -> [u64; 2] {
    let dev = read(PathBuf::from(format!("/proc/{pid}/net/dev")));
    let line = dev
        .lines()
        .find(|l| l.trim_start().starts_with("eth0:"))
        .expect("eth0");
    let n: Vec<u64> = line
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    [n[0], n[8]]
}

/// Calls `figures` between two direct reads of `files` until both reads agree (the kernel's
/// figures held still across the call), and returns the two sides.
async fn settled<T: PartialEq + std::fmt::Debug, F, Fut>(
    files: impl Fn() -> T,
    figures: F,
) -> (T, T)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        let before = files();
        let reported = figures().await;
        if files() == before {
            return (before, reported);
        }
        assert!(
            Instant::now() < deadline,
            "the figures never held still: {before:?}"
        );
    }
}

async fn container_stats(rt: &Runtime, id: &str) -> ContainerStats {
    rt.container_stats(Request::new(ContainerStatsRequest {
        container_id: id.into(),
    }))
    .await
    .expect("ContainerStats")
    .into_inner()
    .stats
    .expect("stats")
}

async fn pod_stats(rt: &Runtime, id: &str) -> LinuxPodSandboxStats {
    rt.pod_sandbox_stats(Request::new(PodSandboxStatsRequest {
        pod_sandbox_id: id.into(),
    }))
    .await
    .expect("PodSandboxStats")
    .into_inner()
    .stats
    .and_then(|s| s.linux)
    .expect("linux pod stats")
}

async fn pid(rt: &Runtime, id: &str) -> u64 {
    let info = rt
        .container_status(Request::new(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }))
        .await
        .expect("ContainerStatus")
        .into_inner()
        .info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    info["pid"].as_u64().expect("a pid")
}

pub fn figures_match_the_kernel(fx: &Fixture) {
    let rt = fx.runtime("stats");
    fx.tokio.block_on(async {
        let config = pod(fx, "stats");
        let uid = config.metadata.as_ref().unwrap().uid.clone();
        let pod_cgroup = format!("{}/pod{uid}", fx.cgroup_base);
        let pod_id = run_pod(&rt, config.clone(), "").await;
        let busy = create(
            &rt,
            &pod_id,
            &config,
            container("busy", &["sh", "-c", "while :; do :; done"]),
        )
        .await;
        let idle = create(
            &rt,
            &pod_id,
            &config,
            container(
                "idle",
                &[
                    "sh",
                    "-c",
                    "head -c 65536 /dev/zero > /blob; exec sleep 1000",
                ],
            ),
        )
        .await;
        start(&rt, &busy).await;
        start(&rt, &idle).await;
        let idle_cgroup = format!("{pod_cgroup}/{idle}");
        let busy_cgroup = format!("{pod_cgroup}/{busy}");

        // The writable layer holds the blob once written.
        let deadline = Instant::now() + SETTLE;
        let layer = loop {
            let layer = container_stats(&rt, &idle)
                .await
                .writable_layer
                .expect("a writable layer");
            if layer.used_bytes.as_ref().unwrap().value >= 65536 {
                break layer;
            }
            assert!(
                Instant::now() < deadline,
                "the blob never showed: {layer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(layer.inodes_used.unwrap().value >= 1);

        // Memory: exactly the kernel's figures, for a container and for the pod.
        let (files, reported) = settled(
            || memory_files(&idle_cgroup),
            || async { memory_figures(&container_stats(&rt, &idle).await.memory.expect("memory")) },
        )
        .await;
        assert_eq!(
            reported, files,
            "container memory: usage, working set, rss, faults, major"
        );
        let (files, reported) = settled(
            || memory_files(&pod_cgroup),
            || async { memory_figures(&pod_stats(&rt, &pod_id).await.memory.expect("memory")) },
        )
        .await;
        assert_eq!(reported, files, "pod memory");

        // Processes and the network as the kernel counts them.
        let (files, reported) = settled(
            || pids_file(&pod_cgroup),
            || async {
                pod_stats(&rt, &pod_id)
                    .await
                    .process
                    .expect("processes")
                    .process_count
                    .unwrap()
                    .value
            },
        )
        .await;
        assert_eq!(reported, files, "pod processes");
        let idle_pid = pid(&rt, &idle).await;
        let (files, reported) = settled(
            || eth0_files(idle_pid),
            || async {
                let net = pod_stats(&rt, &pod_id).await.network.expect("network");
                let eth0 = net
                    .default_interface
                    .expect("eth0 as the default interface");
                assert_eq!(eth0.name, "eth0");
                [eth0.rx_bytes.unwrap().value, eth0.tx_bytes.unwrap().value]
            },
        )
        .await;
        assert_eq!(reported, files, "eth0 bytes received and sent");

        // CPU: between two direct reads, monotonic, and nano-cores the rate between samples.
        let cpu = |s: ContainerStats| s.cpu.expect("cpu");
        let before = cpu_file(&busy_cgroup);
        let first = cpu(container_stats(&rt, &busy).await);
        let first_usage = first.usage_core_nano_seconds.unwrap().value;
        assert!(first_usage >= before);
        let deadline = Instant::now() + SETTLE;
        let second = loop {
            let next = cpu(container_stats(&rt, &busy).await);
            // 10 ms of CPU more: enough for a rate well above zero.
            if next.usage_core_nano_seconds.as_ref().unwrap().value >= first_usage + 10_000_000 {
                break next;
            }
            assert!(Instant::now() < deadline, "the busy container used no CPU");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let second_usage = second.usage_core_nano_seconds.unwrap().value;
        assert!(cpu_file(&busy_cgroup) >= second_usage);
        // Each call samples: the rate is over the last call (the last loop turn's) only, so
        // check it against a fresh pair.
        let third = cpu(container_stats(&rt, &busy).await);
        let third_usage = third.usage_core_nano_seconds.unwrap().value;
        assert!(third_usage >= second_usage && third.timestamp > second.timestamp);
        let expected = ((third_usage - second_usage) as u128 * 1_000_000_000
            / (third.timestamp - second.timestamp) as u128) as u64;
        assert_eq!(third.usage_nano_cores.unwrap().value, expected);
        let pod_cpu = pod_stats(&rt, &pod_id).await.cpu.expect("pod cpu");
        assert!(pod_cpu.usage_core_nano_seconds.unwrap().value >= first_usage);
        assert!(pod_cpu.usage_nano_cores.is_some());

        stop_pod(&rt, &pod_id).await;
        remove_pod(&rt, &pod_id).await;
    });
    assert_clean(fx, "stats");
}
