//! End to end: the kubelet binary on the private containerd with the static CPU manager policy
//! and --reserved-cpus=0. A Guaranteed pod with cpu: 1 gets a CPU of its own and a BestEffort
//! pod the shared pool (read back from the containers' cpuset.cpus); the assignment and its
//! upstream-shaped checkpoint survive a kubelet restart; the CPU returns to the shared pool when
//! the pod goes; a pod whose CPUs are not free is refused at admission; a start with another
//! policy against the checkpoint is refused.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{BUSYBOX, Kubelet, wait_for};

const START: Duration = Duration::from_secs(60);

fn pod(name: &str, resources: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
{resources}"#
    )
}

const GUARANTEED: &str = "    resources:\n      limits: {cpu: \"1\", memory: 64Mi}\n";

/// The kernel's CPU list syntax ("0-1,3") as ids.
fn cpu_list(text: &str) -> BTreeSet<u32> {
    let mut cpus = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<u32>().unwrap()..=b.parse().unwrap()),
            None => {
                cpus.insert(part.parse().unwrap());
            }
        }
    }
    cpus
}

/// The cpuset.cpus of the container's cgroup (cgroupfs driver: a directory named after the
/// container id, somewhere under the kubelet's cgroup root).
fn container_cpus(cgroup_root: &str, container_id: &str) -> Option<BTreeSet<u32>> {
    fn find(dir: &Path, name: &str) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if entry.file_name() == name {
                return Some(path);
            }
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        }
        None
    }
    let mount = Path::new("/sys/fs/cgroup/cpuset");
    assert!(
        mount.join("cgroup.procs").exists(),
        "this test needs the cgroup v1 cpuset hierarchy at {}",
        mount.display()
    );
    let dir = find(
        &mount.join(cgroup_root.trim_start_matches('/')),
        container_id,
    )?;
    let text = std::fs::read_to_string(dir.join("cpuset.cpus")).ok()?;
    Some(cpu_list(&text))
}

fn checkpoint(k: &Kubelet) -> serde_json::Value {
    let text = std::fs::read_to_string(k.dir.join("root/cpu_manager_state"))
        .expect("the CPU manager checkpoint");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn static_policy_pins_a_guaranteed_pod_across_a_restart() {
    let online = cpu_list(&std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap());
    assert!(
        online.len() >= 2,
        "this test needs at least 2 CPUs (one reserved, one exclusive); the machine has {online:?}"
    );
    let _serial = support::serial().await;
    let mut k = Kubelet::new("e2e-cpuman");
    let root = format!("{}/cpuman-e2e", k.runtime.cgroup_root());
    k = k.with_args(&[
        &format!("--cgroup-root={root}"),
        "--cpu-manager-policy=static",
        "--reserved-cpus=0",
        "--cpu-manager-reconcile-period=1s",
    ]);
    k.write_manifest("b.yaml", &pod("b", ""));
    k.write_manifest("g.yaml", &pod("g", GUARANTEED));
    k.start();
    let result = std::panic::AssertUnwindSafe(run(&mut k, &root, &online));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    k.cleanup().await;
    let removed = kubelet_host::cgroupfs::remove_everywhere(&root);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    removed.expect("remove the test's cgroup root");
}

async fn run(k: &mut Kubelet, root: &str, online: &BTreeSet<u32>) {
    let (g, b) = (k.pod_name("g"), k.pod_name("b"));
    let g_id = k.wait_running(&g, &["app"], START).await["app"].id.clone();
    let b_id = k.wait_running(&b, &["app"], START).await["app"].id.clone();
    let g_uid = k.pod_uid(&g).await.unwrap();

    // The Guaranteed container has one CPU, not the reserved one; everyone else shares the rest.
    let exclusive = wait_for("the exclusive CPU in the checkpoint", START, k, || async {
        let entry = checkpoint(k)["entries"][&g_uid]["app"]
            .as_str()
            .map(cpu_list);
        entry.filter(|cpus| cpus.len() == 1)
    })
    .await;
    assert!(!exclusive.contains(&0), "CPU 0 is reserved: {exclusive:?}");
    let shared: BTreeSet<u32> = online.difference(&exclusive).copied().collect();
    if online.len() == 2 {
        assert_eq!(exclusive, BTreeSet::from([1]));
    }
    let pinned = || async {
        let g_cpus = container_cpus(root, &g_id)?;
        let b_cpus = container_cpus(root, &b_id)?;
        (g_cpus == exclusive && b_cpus == shared).then_some(())
    };
    wait_for("the cpusets in the cgroups", START, k, pinned).await;

    // The checkpoint is upstream's: these four keys in this order, a 32-bit FNV checksum.
    let text = std::fs::read_to_string(k.dir.join("root/cpu_manager_state")).unwrap();
    let keys: Vec<&str> = [
        "\"policyName\"",
        "\"defaultCpuSet\"",
        "\"entries\"",
        "\"checksum\"",
    ]
    .into_iter()
    .filter(|key| text.contains(key))
    .collect();
    assert_eq!(keys.len(), 4, "{text}");
    let positions: Vec<usize> = keys.iter().map(|key| text.find(key).unwrap()).collect();
    assert!(positions.is_sorted(), "{text}");
    let state = checkpoint(k);
    assert_eq!(state["policyName"], "static", "{text}");
    assert_eq!(
        cpu_list(state["defaultCpuSet"].as_str().unwrap()),
        shared,
        "{text}"
    );
    let checksum = state["checksum"].as_u64().unwrap();
    assert!(checksum > 0 && checksum <= u64::from(u32::MAX), "{text}");

    // A restart keeps the containers and the assignment.
    k.stop();
    k.start();
    wait_for("the kubelet to start again", START, k, || async {
        (k.log().matches("CPU manager started").count() == 2).then_some(())
    })
    .await;
    assert_eq!(k.running(&g).await["app"].id, g_id);
    assert_eq!(
        checkpoint(k)["entries"][&g_uid]["app"],
        state["entries"][&g_uid]["app"]
    );
    // The exclusive CPU is still taken: a second Guaranteed pod finds none left to have.
    if online.len() == 2 {
        k.write_manifest("g2.yaml", &pod("g2", GUARANTEED));
        // Refused at admission, as upstream: it never gets a sandbox.
        wait_for(
            "the second Guaranteed pod to be refused at admission",
            START,
            k,
            || async {
                let log = k.log();
                (log.contains("UnexpectedAdmissionError")
                    && log.contains("Allocate failed due to not enough cpus available to satisfy request: requested=1, available=0, which is unexpected"))
                    .then_some(())
            },
        )
        .await;
        k.remove_manifest("g2.yaml");
    }
    wait_for("the cpusets after the restart", START, k, pinned).await;

    // The pod goes: its CPU returns to the shared pool.
    k.remove_manifest("g.yaml");
    wait_for("the shared pool to grow back", START, k, || async {
        let b_cpus = container_cpus(root, &b_id)?;
        (b_cpus == *online).then_some(())
    })
    .await;
    let state = checkpoint(k);
    assert!(state.get("entries").is_none(), "{state}");

    // Another policy against this checkpoint is refused at start, as upstream refuses it.
    k.stop();
    let args: Vec<String> = k
        .args()
        .into_iter()
        .map(|a| {
            if a == "--cpu-manager-policy=static" {
                "--cpu-manager-policy=none".into()
            } else {
                a
            }
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_kubelet"))
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run the kubelet");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "configured policy \"none\" differs from state checkpoint policy \"static\", please drain this node and delete the CPU manager checkpoint file"
        ),
        "{stderr}"
    );
}
