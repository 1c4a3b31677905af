//! The figures of /stats/summary and /metrics/resource against the kernel's own, on whichever
//! runtime the environment gives (CI runs this on containerd, then on the built-in runtime), so
//! both runtimes are held to the same cgroup files.
//!
//! Each container figure takes the CRI path (ListContainerStats): memory usage, working set
//! (usage less total_inactive_file), RSS and page faults exactly as the memory cgroup has them,
//! cumulative CPU as cpuacct.usage, and CPU nano-cores (the runtime's own rate, or ours between
//! two samples) within 5% of the rate over the same window from cpuacct.usage.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Kubelet, busybox_pod, free_port, wait_for};

/// CPU a throttled busy loop gets: a steady rate to compare, whatever else the machine runs.
const CPU_LIMIT_MILLIS: u64 = 200;
const WINDOW: Duration = Duration::from_secs(4);
const START: Duration = Duration::from_secs(60);

/// The container's cgroup dir in `hierarchy` (cgroup v1), found by its id below the test's root.
fn cgroup_dir(hierarchy: &str, root: &str, container_id: &str) -> PathBuf {
    fn find(dir: &Path, name: &str, depth: u32) -> Option<PathBuf> {
        let entries = std::fs::read_dir(dir).ok()?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().ok()?.is_dir() {
                continue;
            }
            if entry.file_name() == name {
                return Some(path);
            }
            if depth > 0
                && let Some(found) = find(&path, name, depth - 1)
            {
                return Some(found);
            }
        }
        None
    }
    let base = Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join(root.trim_start_matches('/'));
    find(&base, container_id, 4).unwrap_or_else(|| {
        panic!(
            "no cgroup of container {container_id} below {}",
            base.display()
        )
    })
}

fn read_u64(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// usage, working set, RSS, page faults, major page faults: as CRI runtimes derive them.
fn memory_files(dir: &Path) -> [u64; 5] {
    let usage = read_u64(&dir.join("memory.usage_in_bytes"));
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap();
    let field = |name: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in memory.stat"))
    };
    [
        usage,
        usage.saturating_sub(field("total_inactive_file")),
        field("total_rss"),
        field("total_pgfault"),
        field("total_pgmajfault"),
    ]
}

fn memory_served(container: &Value) -> [u64; 5] {
    let m = &container["memory"];
    [
        "usageBytes",
        "workingSetBytes",
        "rssBytes",
        "pageFaults",
        "majorPageFaults",
    ]
    .map(|key| {
        m[key]
            .as_u64()
            .unwrap_or_else(|| panic!("memory.{key}: {m}"))
    })
}

async fn get(client: &reqwest::Client, port: u16, path: &str) -> Option<String> {
    let response = client
        .get(format!("https://127.0.0.1:{port}{path}"))
        .send()
        .await
        .ok()?;
    (response.status() == 200).then_some(response.text().await.ok()?)
}

/// The pod's only container in /stats/summary, once it has a CPU rate.
async fn served_container(client: &reqwest::Client, port: u16, pod_uid: &str) -> Option<Value> {
    let summary: Value = serde_json::from_str(&get(client, port, "/stats/summary").await?).ok()?;
    let pod = summary["pods"]
        .as_array()?
        .iter()
        .find(|p| p["podRef"]["uid"] == pod_uid)?;
    let container = pod["containers"].as_array()?.first()?.clone();
    container["cpu"]["usageNanoCores"]
        .is_u64()
        .then_some(container)
}

/// A sample in the resource metrics text: `name{labels} value [timestamp]`.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
}

#[tokio::test]
async fn summary_and_resource_metrics_match_the_cgroup_files() {
    let _serial = support::serial().await;
    let port = free_port();
    let mut k = Kubelet::new("e2e-figures")
        .with_config("authorization: {mode: AlwaysAllow}\nauthentication: {anonymous: {enabled: true}, webhook: {enabled: false}}\n")
        .with_args(&["--address=127.0.0.1", &format!("--port={port}")]);
    let script = "dd if=/dev/zero of=/tmp/blob bs=1M count=16 2>/dev/null; while :; do :; done";
    let resources =
        format!("    resources:\n      limits: {{cpu: {CPU_LIMIT_MILLIS}m, memory: 64Mi}}\n");
    k.write_manifest(
        "figures.yaml",
        &(busybox_pod("figures", "Always", &[("burn", script)], "") + &resources),
    );
    k.start();
    let name = k.pod_name("figures");
    let running = k.wait_running(&name, &["burn"], START).await;
    let id = running["burn"].id.clone();
    let uid = k.pod_uid(&name).await.expect("the pod's uid");
    let root = k.runtime.cgroup_root();
    let memory_dir = cgroup_dir("memory", root, &id);
    let cpu_file = cgroup_dir("cpuacct", root, &id).join("cpuacct.usage");
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    // The runtime's nano-cores need two of its samples: the first summary only starts them.
    wait_for("the container in /stats/summary", START, &k, || {
        served_container(&client, port, &uid)
    })
    .await;

    // Memory: the counters are the memory cgroup's own, exactly, while they stand still (the
    // blob is written and the loop allocates nothing).
    let (files, served) = wait_for("memory counters that stand still", START, &k, || async {
        let before = memory_files(&memory_dir);
        let served = memory_served(&served_container(&client, port, &uid).await?);
        (memory_files(&memory_dir) == before).then_some((before, served))
    })
    .await;
    assert_eq!(
        served,
        files,
        "summary memory [usage, working set, rss, faults, major faults] against {}",
        memory_dir.display()
    );
    // The blob sits in the page cache as inactive file pages: in usage, not in the working set.
    assert!(
        files[0] >= 16 << 20,
        "the 16 MiB blob is in usage: {files:?}"
    );

    // CPU: cumulative as cpuacct.usage, bracketed by reads on either side; the rate within 5%
    // of cpuacct.usage's over the window between the two summaries.
    let start_file = read_u64(&cpu_file);
    let started = Instant::now();
    let first = wait_for("a CPU rate in /stats/summary", START, &k, || {
        served_container(&client, port, &uid)
    })
    .await;
    tokio::time::sleep(WINDOW).await;
    let second = wait_for("a CPU rate in /stats/summary", START, &k, || {
        served_container(&client, port, &uid)
    })
    .await;
    let (end_file, elapsed) = (read_u64(&cpu_file), started.elapsed());
    let cumulative = second["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap();
    assert!(
        (start_file..=end_file).contains(&cumulative),
        "usageCoreNanoSeconds {cumulative} outside cpuacct.usage {start_file}..={end_file}"
    );
    let earlier = first["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap();
    let kernel_rate = (end_file - start_file) as f64 / elapsed.as_secs_f64();
    let served_rate = second["cpu"]["usageNanoCores"].as_u64().unwrap() as f64;
    assert!(
        (served_rate - kernel_rate).abs() <= kernel_rate * 0.05,
        "usageNanoCores {served_rate} against {kernel_rate} from cpuacct.usage (cumulative {earlier} -> {cumulative})"
    );
    let limit = CPU_LIMIT_MILLIS as f64 * 1e6;
    assert!(
        (kernel_rate - limit).abs() <= limit * 0.2,
        "the throttled loop ran at {kernel_rate} nano-cores, not about {limit}"
    );

    // /metrics/resource carries the same figures in seconds and bytes.
    let (metrics, working_set) =
        wait_for("resource metrics that stand still", START, &k, || async {
            let before = memory_files(&memory_dir)[1];
            let text = get(&client, port, "/metrics/resource").await?;
            (memory_files(&memory_dir)[1] == before).then_some((text, before))
        })
        .await;
    let labels = format!("container=\"burn\",namespace=\"default\",pod=\"{name}\"");
    assert_eq!(
        metric(&metrics, "container_memory_working_set_bytes", &labels),
        working_set as f64
    );
    let seconds = metric(&metrics, "container_cpu_usage_seconds_total", &labels);
    let now_file = read_u64(&cpu_file) as f64 / 1e9;
    assert!(
        seconds <= now_file && seconds >= end_file as f64 / 1e9,
        "container_cpu_usage_seconds_total {seconds} against cpuacct.usage {now_file}"
    );

    k.remove_manifest("figures.yaml");
    k.cleanup().await;
}
