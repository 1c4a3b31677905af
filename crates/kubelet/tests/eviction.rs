//! Eviction end to end: the kubelet binary in cluster mode (the test API server) on the private
//! containerd, with a memory.available threshold 400 MiB below what the node has now. A pod
//! that holds 800 MiB goes 400 MiB past it and is evicted: Failed with reason Evicted and upstream's
//! message, the DisruptionTarget condition, an Evicted event; the other pod runs on, and the
//! node's MemoryPressure is set, then cleared after the transition period.

mod support;

use std::path::Path;
use std::time::Duration;
use support::cluster::{Backend, Cluster, bound_pod, eventually};

const START: Duration = Duration::from_secs(60);
const MI: u64 = 1 << 20;

/// memory.available as the kubelet computes it: capacity minus the root cgroup's working set.
fn memory_available() -> u64 {
    let mount = Path::new("/sys/fs/cgroup");
    let unified = kubelet_stats::host::is_unified(mount);
    let memory = kubelet_stats::host::memory(mount, unified, Path::new("/proc"))
        .expect("this test needs the root memory cgroup under /sys/fs/cgroup");
    memory.total_bytes - memory.working_set_bytes
}

fn condition(node: &serde_json::Value, kind: &str) -> Option<String> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?["status"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn a_pod_past_the_memory_threshold_is_evicted_and_the_pressure_clears() {
    let _serial = support::serial().await;
    let cluster = Cluster::start(Backend::Test);
    let node = "e2e-eviction";
    // The node's figure moves with every process on the machine (a build beside the test can
    // take hundreds of MiB): the margins either side of the threshold absorb 400 MiB of that.
    let threshold_kib = (memory_available() - 400 * MI) / 1024;
    let mut k = cluster.kubelet(node).with_args(&[
        &format!("--eviction-hard=memory.available<{threshold_kib}Ki"),
        "--eviction-pressure-transition-period=10s",
        "--node-status-update-frequency=2s",
    ]);
    k.start();
    eventually("the node registered", START, &k, || {
        let n = cluster.get("node", node, "default")?;
        (condition(&n, "Ready")? == "True").then_some(())
    })
    .await;

    // A request keeps the quiet pod out of the first ranks (it uses less than it asked for) and
    // admitted under memory pressure (it is not BestEffort).
    // Named after the node, so the harness cleans up whatever they leave.
    let quiet = &format!("quiet-{node}");
    cluster.create(&bound_pod(quiet, node, "sleep 3600", "").replace(
        "    command:",
        "    resources:\n      requests:\n        memory: 64Mi\n    command:",
    ));
    k.wait_running(quiet, &["app"], START).await;
    // tail keeps the whole newline-free input until its writer ends.
    let hog = &format!("hog-{node}");
    cluster.create(&bound_pod(
        hog,
        node,
        "(head -c 800m /dev/zero; sleep 3600) | tail",
        "",
    ));

    let mut pressure_seen = false;
    let status = eventually("the hog evicted", START, &k, || {
        let n = cluster.get("node", node, "default")?;
        pressure_seen |= condition(&n, "MemoryPressure").as_deref() == Some("True");
        let p = cluster.get("pod", hog, "default")?;
        (p["status"]["phase"] == "Failed").then(|| p["status"].clone())
    })
    .await;
    assert_eq!(status["reason"], "Evicted", "{status}");
    let message = status["message"].as_str().unwrap();
    let prefix = format!(
        "The node was low on resource: memory. Threshold quantity: {threshold_kib}Ki, available: "
    );
    assert!(message.starts_with(&prefix), "{message}");
    assert!(
        message.contains(". Container app was using ")
            && message.ends_with(", request is 0, has larger consumption of memory. "),
        "{message}"
    );
    let disruption = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .unwrap_or_else(|| panic!("no DisruptionTarget condition: {status}"));
    assert_eq!(disruption["status"], "True");
    assert_eq!(disruption["reason"], "TerminationByKubelet");
    assert_eq!(disruption["message"], message);

    let event = eventually("the Evicted event", START, &k, || {
        cluster.event(hog, "Evicted")
    })
    .await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["message"], message);

    // The pressure was reported, and goes once the transition period has passed.
    eventually("MemoryPressure cleared", START, &k, || {
        let n = cluster.get("node", node, "default")?;
        let now = condition(&n, "MemoryPressure")?;
        pressure_seen |= now == "True";
        (pressure_seen && now == "False").then_some(())
    })
    .await;

    let other = cluster.get("pod", quiet, "default").unwrap();
    assert_eq!(other["status"]["phase"], "Running", "{other}");
    assert_eq!(
        other["status"]["containerStatuses"][0]["restartCount"], 0,
        "{other}"
    );
    assert!(
        k.running(quiet).await.contains_key("app"),
        "the quiet pod's container stopped"
    );
    assert!(
        k.running(hog).await.is_empty(),
        "the evicted pod still runs"
    );
    let log = k.log();
    assert_eq!(log.matches("Evicting pod").count(), 1, "{log}");
    for name in [quiet, hog] {
        cluster
            .kubectl(&["delete", "pod", name, "--wait=false"])
            .unwrap();
    }
    k.cleanup().await;
}
