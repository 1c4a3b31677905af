//! The bench command end to end with tiny sizes, so it cannot rot: every scenario against the
//! test run's private containerd and the debug kubelet. No timing is asserted: this checks that
//! the figures exist, are positive, and that nothing is left behind.

use kubelet_cri::RuntimeService;
use kubelet_cri::api::PodSandboxFilter;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const NODE: &str = "bench-smoke";
/// Under the test cgroup root, which containerd-down.sh removes even after a crash.
const CGROUP_ROOT: &str = "/kubelet-rs-test/bench";

/// One bench at a time: the kubelets it starts serve the kubelet's fixed ports (10250), and the
/// built-in runtime's bridge is the bench's alone.
static ONE_BENCH: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The kubelet cargo built beside the bench (target/debug/kubelet).
fn debug_kubelet() -> PathBuf {
    let kubelet = Path::new(env!("CARGO_BIN_EXE_kubelet-bench")).with_file_name("kubelet");
    assert!(
        kubelet.is_file(),
        "{} is missing: build it with `cargo build --workspace --all-targets`",
        kubelet.display()
    );
    kubelet
}

/// The upstream kubelet (v1.28): $KUBELET_TEST_UPSTREAM_KUBELET, or what `../shared/tools/get`
/// unpacks.
fn upstream_kubelet() -> PathBuf {
    if let Ok(path) = std::env::var("KUBELET_TEST_UPSTREAM_KUBELET") {
        return PathBuf::from(path);
    }
    let get = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/get");
    let out = Command::new(&get)
        .arg("kubelet")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} cannot run ({e}); set KUBELET_TEST_UPSTREAM_KUBELET to a kubelet v1.28 binary",
                get.display()
            )
        });
    assert!(
        out.status.success(),
        "{} kubelet failed: {}",
        get.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn number(value: &Value, path: &str) -> f64 {
    value
        .pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} is not a number in {value:#}"))
}

#[tokio::test]
async fn every_scenario_reports_figures_and_leaves_nothing_behind() {
    let _one = ONE_BENCH.lock().await;
    let runtime = kubelet_testkit::containerd();
    let dir = runtime.temp_dir("bench-smoke");
    let json = dir.path().join("bench.json");
    let plot = dir.path().join("bench.svg");

    let output = Command::new(env!("CARGO_BIN_EXE_kubelet-bench"))
        .arg("all")
        .args(["--pods", "2", "--repeat", "1", "--window", "1"])
        .arg(format!("--runtime-endpoint={}", runtime.endpoint()))
        .arg(format!("--kubelet-binary={}", debug_kubelet().display()))
        .arg(format!("--cgroup-root={CGROUP_ROOT}"))
        .arg(format!("--node-name={NODE}"))
        .arg(format!("--json={}", json.display()))
        .arg(format!("--plot={}", plot.display()))
        .output()
        .expect("run kubelet-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubelet-bench failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("A/floor"), "no ratio column in:\n{stdout}");

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let summary = report["summary"].as_array().unwrap();
    let subjects: Vec<&str> = summary
        .iter()
        .map(|s| s["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["floor", "A"]);
    let (floor, kubelet) = (&summary[0], &summary[1]);

    for subject in [floor, kubelet] {
        assert_eq!(number(subject, "/start_single/n"), 1.0);
        assert_eq!(number(subject, "/start_burst/n"), 2.0);
        for path in [
            "/start_single/p50_ms",
            "/start_burst/p99_ms",
            "/burst_last_pod_ms",
        ] {
            assert!(number(subject, path) > 0.0, "{path}");
        }
        assert!(number(subject, "/churn_ms") > 0.0);
    }
    assert!(number(kubelet, "/reaction_restart/max_ms") > 0.0);
    assert!(number(kubelet, "/reaction_reported/max_ms") > 0.0);
    let pod_counts: Vec<f64> = kubelet["steady"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| number(p, "/pods"))
        .collect();
    assert_eq!(pod_counts, [0.0, 1.0, 2.0]);
    for point in kubelet["steady"].as_array().unwrap() {
        assert!(number(point, "/rss_mib_mean") > 0.0);
        assert!(number(point, "/pss_mib_mean") > 0.0);
        assert!(number(point, "/cpu_cores") >= 0.0);
        // containerd itself, plus a shim per running pod.
        let pods = number(point, "/pods");
        assert!(
            number(point, "/runtime_processes") >= 1.0 + pods,
            "{point:#}"
        );
        assert!(number(point, "/runtime_rss_mib_mean") > 0.0);
    }
    assert!(number(&report, "/machine/cpus") > 0.0);
    let runtimes = report["machine"]["runtimes"].as_array().unwrap();
    assert_eq!(runtimes.len(), 1);
    assert!(runtimes[0].as_str().unwrap().contains("containerd"));

    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("pod start latency"));

    let cri = runtime.connect().await;
    let left: Vec<_> = cri
        .list_pod_sandbox(Some(PodSandboxFilter::default()))
        .await
        .unwrap()
        .into_iter()
        .filter(|s| {
            s.labels
                .get("io.kubernetes.pod.name")
                .is_some_and(|n| n.ends_with(NODE))
        })
        .collect();
    assert!(left.is_empty(), "sandboxes left behind: {left:?}");
    for hierarchy in ["pids", "memory", "cpu"] {
        let cgroup = Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(&CGROUP_ROOT[1..]);
        assert!(!cgroup.exists(), "{} was left behind", cgroup.display());
    }
}

/// Both runtimes in one run: the test run's containerd and the built-in runtime the bench starts
/// itself (served by the debug kubelet), every subject on each, with columns per runtime; and
/// nothing of the built-in runtime left afterwards (its bridge, its dir's mounts).
#[tokio::test]
async fn both_runtimes_side_by_side_and_the_builtin_one_leaves_nothing() {
    let _one = ONE_BENCH.lock().await;
    let runtime = kubelet_testkit::containerd();
    let dir = runtime.temp_dir("bench-smoke-runtimes");
    let json = dir.path().join("bench.json");
    let cgroup_root = format!("{CGROUP_ROOT}-runtimes");

    let output = Command::new(env!("CARGO_BIN_EXE_kubelet-bench"))
        .args(["all", "--runtime", "containerd", "--runtime", "builtin"])
        .args(["--pods", "2", "--repeat", "1", "--window", "1"])
        .arg(format!("--runtime-endpoint={}", runtime.endpoint()))
        .arg(format!("--builtin-binary={}", debug_kubelet().display()))
        .arg(format!("--kubelet-binary={}", debug_kubelet().display()))
        .arg(format!("--cgroup-root={cgroup_root}"))
        .arg(format!("--node-name={NODE}-rt"))
        .arg(format!("--json={}", json.display()))
        .output()
        .expect("run kubelet-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubelet-bench failed ({}):\n{stdout}\n{stderr}",
        output.status,
    );
    for column in ["floor@builtin/floor@containerd", "A@builtin/A@containerd"] {
        assert!(stdout.contains(column), "no {column} column in:\n{stdout}");
    }
    assert!(
        stdout.contains("floor call: RunPodSandbox p50"),
        "no per-call row in:\n{stdout}"
    );

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let labels: Vec<&str> = report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "floor@containerd",
            "A@containerd",
            "floor@builtin",
            "A@builtin"
        ]
    );
    for summary in report["summary"].as_array().unwrap() {
        assert_eq!(number(summary, "/start_single/n"), 1.0);
        assert!(number(summary, "/start_burst/p99_ms") > 0.0);
    }
    let floor_builtin = &report["summary"][2];
    assert!(number(floor_builtin, "/calls/RunPodSandbox/p50_ms") > 0.0);
    assert!(number(floor_builtin, "/calls/StartContainer/p50_ms") > 0.0);
    assert_eq!(report["machine"]["runtimes"].as_array().unwrap().len(), 2);

    assert!(
        !Path::new("/sys/class/net/kbench1").exists(),
        "the built-in runtime's bridge was left behind"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(" /tmp/kbb."),
        "mounts of the built-in runtime were left behind:\n{mountinfo}"
    );
    for hierarchy in ["pids", "memory", "cpu"] {
        let cgroup = Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(&cgroup_root[1..]);
        assert!(!cgroup.exists(), "{} was left behind", cgroup.display());
    }
}

/// The upstream kubelet as the second subject: it runs every scenario the bench has (it needs
/// the cgroup root in every hierarchy, and reports exits on its read-only /pods), and its column
/// stands beside ours.
#[tokio::test]
async fn the_upstream_kubelet_runs_every_scenario_beside_ours() {
    let _one = ONE_BENCH.lock().await;
    let runtime = kubelet_testkit::containerd();
    let dir = runtime.temp_dir("bench-smoke-upstream");
    let json = dir.path().join("bench.json");
    let cgroup_root = format!("{CGROUP_ROOT}-upstream");

    let output = Command::new(env!("CARGO_BIN_EXE_kubelet-bench"))
        .arg("all")
        .args(["--pods", "2", "--repeat", "1", "--window", "1"])
        .arg(format!("--runtime-endpoint={}", runtime.endpoint()))
        .arg(format!("--kubelet-binary={}", debug_kubelet().display()))
        .arg(format!("--kubelet-binary={}", upstream_kubelet().display()))
        .arg(format!("--cgroup-root={cgroup_root}"))
        .arg(format!("--node-name={NODE}-up"))
        .arg(format!("--json={}", json.display()))
        .output()
        .expect("run kubelet-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubelet-bench failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("B/A"), "no B/A column in:\n{stdout}");

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let upstream = &report["summary"][2];
    assert_eq!(upstream["subject"], "B");
    assert!(number(upstream, "/reaction_restart/max_ms") > 0.0);
    assert!(number(upstream, "/reaction_reported/max_ms") > 0.0);
    assert!(number(upstream, "/churn_ms") > 0.0);
    for point in upstream["steady"].as_array().unwrap() {
        assert!(number(point, "/pss_mib_mean") > 0.0);
    }
    for hierarchy in ["pids", "memory", "cpu", "cpuset"] {
        let cgroup = Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(&cgroup_root[1..]);
        assert!(!cgroup.exists(), "{} was left behind", cgroup.display());
    }
}
