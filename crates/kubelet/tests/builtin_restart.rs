//! kill -9 of the kubelet that embeds the built-in runtime in the middle of a burst of 30 static
//! pods (issue 10, item 5). After the restart exactly the 30 pods run, each in one ready sandbox
//! with one running container; what ran before the kill runs on untouched; a create the kill cut
//! off was finished or rolled back, never left half-done (no record, mount, monitor, IPAM lease
//! or veth beyond the live pods'). Removing the pods then leaves nothing behind.

mod support;

use kubelet_cri::RuntimeService;
use kubelet_cri::api::ContainerState;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::builtin::Node;
use support::{BUSYBOX, wait_until};

const PODS: usize = 30;
const POD_NAME: &str = "io.kubernetes.pod.name";
/// The kill lands once this many containers run: the burst is under way, far from over.
const KILL_AT: usize = 10;
const NODE: &str = "builtin-restart";
const WAIT: Duration = Duration::from_secs(40);
/// How long the restarted kubelet keeps syncing before the checks: a wrong decision (a
/// duplicate, a restart) would show by then.
const SETTLE: Duration = Duration::from_secs(3);

fn manifest(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: sleep\n    image: {BUSYBOX}\n    imagePullPolicy: Never\n    command: [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n"
    )
}

fn pod_names() -> Vec<String> {
    (0..PODS).map(|i| format!("burst-{i:02}")).collect()
}

/// The full name of a sandbox's or container's pod, from its labels.
fn pod_of(object: &Value) -> String {
    object["labels"][POD_NAME]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn id_of(object: &Value) -> String {
    object["id"].as_str().unwrap_or_default().to_string()
}

/// Running containers' ids by pod.
fn running(containers: &[Value]) -> BTreeMap<String, String> {
    containers
        .iter()
        .filter(|c| c["state"] == "CONTAINER_RUNNING")
        .map(|c| (pod_of(c), id_of(c)))
        .collect()
}

fn attempt(object: &Value) -> u64 {
    object["metadata"]["attempt"].as_u64().unwrap_or(0)
}

/// One line per sandbox and container, by pod, for failure messages.
fn summary(sandboxes: &[Value], containers: &[Value]) -> Vec<String> {
    let mut lines: Vec<String> = sandboxes
        .iter()
        .chain(containers)
        .map(|o| {
            let kind = if o["podSandboxId"].is_null() {
                "sandbox"
            } else {
                "container"
            };
            let state = o["state"].as_str().unwrap_or_default();
            format!(
                "{} {kind} {} {state} attempt {}",
                pod_of(o),
                id_of(o),
                attempt(o)
            )
        })
        .collect();
    lines.sort();
    lines
}

/// A 64-hex-digit object id at the start of a file name (`ID`, `ID.json`, ...).
fn leading_id(name: &str) -> Option<&str> {
    let id = name.get(..64)?;
    id.bytes().all(|b| b.is_ascii_hexdigit()).then_some(id)
}

/// The files and dirs under `dir` named by a sandbox or container id, by id. A dir named by an
/// id is not entered (a container's bundle holds its root file system).
fn ids_under(dir: &Path, ids: &mut BTreeMap<String, Vec<PathBuf>>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = leading_id(&name) {
            ids.entry(id.to_string()).or_default().push(entry.path());
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            ids_under(&entry.path(), ids);
        }
    }
}

/// What the runtime holds on the host beside its CRI lists.
#[derive(Debug, Default, PartialEq)]
struct Host {
    /// Files and dirs named by an id (records, bundles, monitor and sandbox dirs, CNI cache)
    /// under the runtime's root and state, the image store aside (its digests look like ids).
    ids: BTreeMap<String, Vec<PathBuf>>,
    mounts: Vec<String>,
    monitors: Vec<String>,
    /// host-local IPAM leases: files named by the address.
    leases: usize,
    /// Veths on the node's bridge, one per attached sandbox.
    bridge_ports: usize,
}

fn host(node: &Node) -> Host {
    let mut ids = BTreeMap::new();
    for dir in std::fs::read_dir(node.runtime_root())
        .into_iter()
        .flatten()
        .flatten()
    {
        if dir.file_name() != "images" {
            ids_under(&dir.path(), &mut ids);
        }
    }
    ids_under(&node.runtime_state(), &mut ids);
    let leases = std::fs::read_dir(node.dir.join("ipam").join(&node.bridge))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .parse::<std::net::IpAddr>()
                .is_ok()
        })
        .count();
    let ports = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &node.bridge])
        .output()
        .expect("run ip link");
    Host {
        ids,
        mounts: node.mounts(),
        monitors: node
            .monitors()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        leases,
        bridge_ports: String::from_utf8_lossy(&ports.stdout).lines().count(),
    }
}

#[tokio::test]
async fn a_kill_during_a_burst_of_pods_loses_nothing_and_restarts_nothing() {
    let mut node = Node::new("restart", 1);
    let args = node.kubelet_args(NODE);
    let socket = node.kubelet_socket();
    node.start_kubelet(&args);
    node.wait_for_socket(&socket);

    // All at once, each file whole (written aside, renamed in).
    let manifests = node.dir.join("manifests");
    for name in pod_names() {
        let tmp = node.dir.join(format!("{name}.yaml"));
        std::fs::write(&tmp, manifest(&name)).unwrap();
        std::fs::rename(&tmp, manifests.join(format!("{name}.yaml"))).unwrap();
    }
    // The kill must land within the burst, which takes about a second: a CRI client polls, as
    // crictl starts too slowly under that load.
    let cri = node.cri(&socket).await;
    let before = wait_until("the burst under way", WAIT, node.log_path(), || async {
        let running: BTreeMap<String, String> = cri
            .list_containers(None)
            .await
            .ok()?
            .into_iter()
            .filter(|c| c.state == ContainerState::ContainerRunning as i32)
            .map(|c| (c.labels[POD_NAME].clone(), c.id))
            .collect();
        (running.len() >= KILL_AT).then_some(running)
    })
    .await;
    node.stop(Signal::SIGKILL);
    assert!(
        before.len() < PODS,
        "all {PODS} pods ran before the kill: it hit no create in flight"
    );

    node.start_kubelet(&args);
    node.wait_for_socket(&socket);
    wait_until("all pods running", WAIT, node.log_path(), || async {
        (running(&node.containers(&socket)).len() == PODS).then_some(())
    })
    .await;
    tokio::time::sleep(SETTLE).await;

    // One ready sandbox and one running container of attempt 0 per pod, nothing else.
    let expected: Vec<String> = pod_names().iter().map(|n| format!("{n}-{NODE}")).collect();
    let sandboxes = node.sandboxes(&socket);
    let containers = node.containers(&socket);
    let listing = || format!("{:#?}", summary(&sandboxes, &containers));
    for (objects, state) in [
        (&sandboxes, "SANDBOX_READY"),
        (&containers, "CONTAINER_RUNNING"),
    ] {
        let mut pods: Vec<String> = objects.iter().map(pod_of).collect();
        pods.sort();
        assert_eq!(pods, expected, "one of each per pod: {}", listing());
        assert!(
            objects
                .iter()
                .all(|o| o["state"] == state && attempt(o) == 0),
            "all {state} at attempt 0: {}",
            listing()
        );
    }
    let sandbox_ids: BTreeSet<String> = sandboxes.iter().map(id_of).collect();
    for c in &containers {
        assert!(
            sandbox_ids.contains(c["podSandboxId"].as_str().unwrap()),
            "{c:#}"
        );
        assert_eq!(
            c["annotations"]["io.kubernetes.container.restartCount"], "0",
            "{c:#}"
        );
    }
    let after = running(&containers);
    for (pod, id) in &before {
        assert_eq!(after.get(pod), Some(id), "{pod}'s container was replaced");
    }

    let container_ids: BTreeSet<String> = after.into_values().collect();
    let live: BTreeSet<String> = sandbox_ids.union(&container_ids).cloned().collect();
    let held = host(&node);
    let stray: Vec<&Vec<PathBuf>> = held
        .ids
        .iter()
        .filter(|(id, _)| !live.contains(*id))
        .map(|(_, paths)| paths)
        .collect();
    assert!(stray.is_empty(), "files of no live object: {stray:#?}");
    assert!(
        held.mounts
            .iter()
            .all(|m| live.iter().any(|id| m.contains(id.as_str()))),
        "mounts of no live object: {:#?}",
        held.mounts
    );
    // As many monitors as containers, each of one: none twice, none of a rolled-back create.
    assert_eq!(held.monitors.len(), PODS, "{:#?}", held.monitors);
    assert!(
        container_ids
            .iter()
            .all(|id| held.monitors.iter().any(|m| m.contains(id.as_str()))),
        "{:#?}",
        held.monitors
    );
    assert_eq!(
        (held.leases, held.bridge_ports),
        (PODS, PODS),
        "IPAM leases and bridge ports"
    );

    // The kubelet tears the pods down; nothing of them may stay on the host.
    for name in pod_names() {
        std::fs::remove_file(manifests.join(format!("{name}.yaml"))).unwrap();
    }
    node.wait_until_empty(&socket, WAIT).await;
    // Removal waits for a monitor's exit file, written just before the monitor ends: a monitor
    // may outlive its container's removal by a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = host(&node);
    while left != Host::default() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = host(&node);
    }
    assert_eq!(left, Host::default(), "left after the pods' removal");
    node.stop(Signal::SIGTERM);
}
