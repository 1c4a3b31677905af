//! End to end: the kubelet binary on the private containerd sets up the QoS cgroups and node
//! allocatable under its own --cgroup-root, limits pod cgroups, and removes a pod's cgroup
//! (killing what lingers in it), also one left behind from before a restart. The values are
//! read back from the cgroup v1 files.

mod support;

use kubelet_kuberuntime::container_config::resources::milli_cpu_to_shares;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;
use support::{BUSYBOX, Kubelet, wait_for};

const START: Duration = Duration::from_secs(60);
const KUBE_RESERVED_MEMORY: u64 = 256 << 20;
const KUBE_RESERVED_CPU_MILLI: u64 = 100;

/// The test's cgroup root, below the one every test pod lives under.
fn cgroup_root(k: &Kubelet) -> String {
    format!("{}/qos-e2e", k.runtime.cgroup_root())
}

/// A v1 hierarchy's directory of `cgroup`; fails clearly on a host without it.
fn v1_dir(controller: &str, cgroup: &str) -> PathBuf {
    let mount = PathBuf::from("/sys/fs/cgroup").join(controller);
    assert!(
        mount.join("cgroup.procs").exists(),
        "this test needs the cgroup v1 {controller} hierarchy at {}",
        mount.display()
    );
    mount.join(cgroup.trim_start_matches('/'))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn burstable_pod(name: &str, cpu_request: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    resources:
      requests:
        cpu: {cpu_request}
"#
    )
}

/// A process of the test's own moved into `cgroup` of the cpu, memory and pids hierarchies,
/// reaped by a thread so that, once killed, it leaves no zombie behind.
fn linger_in(cgroup: &str) -> (u32, std::sync::mpsc::Receiver<std::process::ExitStatus>) {
    let mut child: Child = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id();
    for controller in ["cpu", "memory", "pids"] {
        let procs = v1_dir(controller, cgroup).join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .unwrap_or_else(|e| panic!("cannot move {pid} into {}: {e}", procs.display()));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait().unwrap());
    });
    (pid, rx)
}

fn gone_everywhere(cgroup: &str) -> bool {
    ["cpu", "memory", "pids"]
        .iter()
        .all(|c| !v1_dir(c, cgroup).exists())
}

#[tokio::test]
async fn qos_tiers_allocatable_pod_limits_and_removal() {
    let _serial = support::serial().await;
    let mut k = Kubelet::new("e2e-qos");
    let root = cgroup_root(&k);
    let kubepods = format!("{root}/kubepods");
    let burstable = format!("{kubepods}/burstable");
    k = k.with_args(&[
        &format!("--cgroup-root={root}"),
        &format!("--kube-reserved=cpu={KUBE_RESERVED_CPU_MILLI}m,memory={KUBE_RESERVED_MEMORY}"),
        "--pod-max-pids=64",
    ]);
    k.write_manifest("b1.yaml", &burstable_pod("b1", "100m"));
    k.write_manifest("b2.yaml", &burstable_pod("b2", "200m"));
    k.start();
    let result = std::panic::AssertUnwindSafe(run(&mut k, &kubepods, &burstable));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    k.cleanup().await;
    let removed = kubelet_host::cgroupfs::remove_everywhere(&root);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    removed.expect("remove the test's cgroup root");
}

async fn run(k: &mut Kubelet, kubepods: &str, burstable: &str) {
    let b1 = k.pod_name("b1");
    let b2 = k.pod_name("b2");
    k.wait_running(&b1, &["main"], START).await;
    k.wait_running(&b2, &["main"], START).await;

    // Node allocatable on kubepods: capacity minus --kube-reserved (pods enforced by default).
    let memory = kubelet_host::machine::memory_bytes().unwrap();
    let cpus = kubelet_host::machine::online_cpus().unwrap();
    // The kernel rounds a memory limit down to whole pages.
    let page = 4096;
    assert_eq!(
        read(&v1_dir("memory", kubepods).join("memory.limit_in_bytes")),
        Some(((memory - KUBE_RESERVED_MEMORY) / page * page).to_string())
    );
    assert_eq!(
        read(&v1_dir("cpu", kubepods).join("cpu.shares")),
        Some(milli_cpu_to_shares((cpus * 1000 - KUBE_RESERVED_CPU_MILLI) as i64).to_string())
    );
    // The tiers: besteffort at the minimum, no memory limit on either.
    let besteffort = format!("{kubepods}/besteffort");
    assert_eq!(
        read(&v1_dir("cpu", &besteffort).join("cpu.shares")),
        Some("2".into())
    );
    let unlimited = read(&v1_dir("memory", "/").join("memory.limit_in_bytes"));
    for tier in [burstable, besteffort.as_str()] {
        assert_eq!(
            read(&v1_dir("memory", tier).join("memory.limit_in_bytes")),
            unlimited,
            "{tier} has no memory limit"
        );
    }
    // Burstable shares follow the sum of the requests: 300m.
    let shares = |want: i64| {
        let file = v1_dir("cpu", burstable).join("cpu.shares");
        move || {
            let file = file.clone();
            async move { (read(&file) == Some(want.to_string())).then_some(()) }
        }
    };
    wait_for(
        "burstable shares for 300m",
        START,
        k,
        shares(milli_cpu_to_shares(300)),
    )
    .await;

    // The pod cgroup carries --pod-max-pids.
    let uid2 = k.pod_uid(&b2).await.unwrap();
    let pod2 = format!("{burstable}/pod{uid2}");
    assert_eq!(
        read(&v1_dir("pids", &pod2).join("pids.max")),
        Some("64".into())
    );

    // A removed pod: what lingers in its cgroup is killed, the cgroup goes, the shares shrink.
    let (pid, exited) = linger_in(&pod2);
    k.remove_manifest("b2.yaml");
    wait_for("b2's cgroup removed", START, k, || async {
        gone_everywhere(&pod2).then_some(())
    })
    .await;
    let status = exited
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("process {pid} in the removed pod's cgroup still runs"));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed with SIGKILL"
    );
    wait_for(
        "burstable shares for 100m",
        START,
        k,
        shares(milli_cpu_to_shares(100)),
    )
    .await;

    // A pod cgroup the kubelet does not know, left from before a restart, goes the same way.
    k.stop();
    let orphan = format!("{kubepods}/besteffort/podorphan-e2e-qos");
    for controller in ["cpu", "memory", "pids"] {
        std::fs::create_dir_all(v1_dir(controller, &orphan)).unwrap();
    }
    let (_, orphan_exited) = linger_in(&orphan);
    k.start();
    wait_for("the orphaned pod cgroup removed", START, k, || async {
        gone_everywhere(&orphan).then_some(())
    })
    .await;
    orphan_exited
        .recv_timeout(Duration::from_secs(5))
        .expect("the process in the orphaned cgroup killed");
    k.wait_running(&b1, &["main"], START).await;
}
