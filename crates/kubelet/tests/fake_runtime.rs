//! The kubelet's sync loop, pod workers and PLEG against the in-memory fake runtime, on paused
//! time: back-off, init order, orphan cleanup and the event-stream PLEG.

use k8s_openapi::api::core::v1::Pod;
use kubelet::cm::cgroups::PodCgroups;
use kubelet::cm::machine::MachineInfo;
use kubelet::pleg::Pleg;
use kubelet::pod_sync::PodSyncer;
use kubelet::pod_workers::PodWorkers;
use kubelet::probes::Probes;
use kubelet::server::healthz::Health;
use kubelet::status::StatusManager;
use kubelet::sync_loop::SyncLoop;
use kubelet_cri::api::{PodSandboxConfig, PodSandboxMetadata};
use kubelet_cri::fake::{Behavior, FakeRuntime};
use kubelet_cri::{Runtime, RuntimeService};
use kubelet_kuberuntime::dns::DnsOptions;
use kubelet_kuberuntime::events::LogRecorder;
use kubelet_kuberuntime::manager::{ManagerConfig, RuntimeManager};
use kubelet_kuberuntime::sandbox_config::SandboxOptions;
use kubelet_prober::handlers::Handlers;
use kubelet_prober::{LifecycleHandlers, ProbeManager};
use kubelet_sources::Mux;
use kubelet_volumes::VolumeManager;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const IMAGE: &str = "localhost/busybox:1.35";

struct Node {
    fake: FakeRuntime,
    status: Arc<StatusManager>,
    mux: Mux,
    _dir: tempfile::TempDir,
}

/// A kubelet on the fake runtime, with its sources behind `mux`.
async fn node(sources: &[&'static str]) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    fake.add_image(IMAGE);
    let runtime: Arc<dyn Runtime> = Arc::new(fake.clone());
    let root = dir.path().join("root");
    let volumes = Arc::new(VolumeManager::new(root.clone()));
    let cfg = ManagerConfig {
        sandbox: SandboxOptions {
            pod_logs_dir: dir.path().join("logs"),
            dns: DnsOptions {
                cluster_dns: vec![],
                cluster_domain: "cluster.local".into(),
                resolv_conf: dir.path().join("resolv.conf"),
                ..Default::default()
            },
            cgroup_root: "/".into(),
            cgroups_per_qos: true,
            cgroup_driver: Default::default(),
            cfs_quota: Default::default(),
        },
        pods_dir: root.join("pods"),
        container_logs_symlink_dir: dir.path().join("containers"),
        host_ip: Some("192.0.2.10".into()),
        node_memory_capacity: 8 << 30,
        node_allocatable_cpu_milli: Some(4000),
        serialize_image_pulls: true,
        dead_containers: Default::default(),
        memory_qos: None,
    };
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    let hooks = Arc::new(LifecycleHandlers::new(Handlers::new(runtime.clone())));
    let (prober, probe_updates) = ProbeManager::new(runtime.clone(), Arc::new(LogRecorder));
    let manager = Arc::new(
        RuntimeManager::new(
            runtime.clone(),
            volumes.clone(),
            Arc::new(LogRecorder),
            hooks,
            cfg,
        )
        .await
        .unwrap(),
    );
    let status = Arc::new(StatusManager::default());
    let syncer = Arc::new(PodSyncer {
        runtime: manager,
        volumes,
        cgroups: PodCgroups::unmanaged("/"),
        status: status.clone(),
        events: Arc::new(LogRecorder),
        pods_dir: root.join("pods"),
        pod_logs_dir: dir.path().join("logs"),
        host_ip: Some("192.0.2.10".into()),
        sync_frequency: Duration::from_secs(60),
        probes: Probes::new(prober),
        metrics: Arc::new(kubelet_stats::KubeletMetrics::new(
            "node",
            kubelet_stats::BuildInfo::default(),
        )),
    });
    let (mux, updates) = Mux::new();
    for s in sources {
        drop(mux.source(s));
    }
    let machine = MachineInfo {
        cpu_milli: 4000,
        memory_bytes: 8 << 30,
    };
    let sync_loop = SyncLoop::new(
        kubelet::pod_manager::PodManager::default(),
        PodWorkers::new(syncer),
        mux.ready(),
        machine,
        110,
        Arc::new(LogRecorder),
        Health::default(),
    );
    let (pleg, pleg_events) = Pleg::new(runtime);
    tokio::spawn(pleg.run());
    tokio::spawn(sync_loop.run(updates, pleg_events, probe_updates));
    Node {
        fake,
        status,
        mux,
        _dir: dir,
    }
}

fn pod(name: &str, policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
    let c = |n: &&str| serde_json::json!({"name": n, "image": IMAGE, "imagePullPolicy": "IfNotPresent"});
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 2,
                 "initContainers": inits.iter().map(c).collect::<Vec<_>>(),
                 "containers": apps.iter().map(c).collect::<Vec<_>>()}
    }))
    .unwrap()
}

fn count(fake: &FakeRuntime, call: &str) -> usize {
    fake.calls().iter().filter(|c| *c == call).count()
}

#[tokio::test(start_paused = true)]
async fn crash_loop_back_off_doubles() {
    let n = node(&["file"]).await;
    n.fake.set_behavior(
        "app",
        Behavior::ExitAfter {
            after: Duration::from_secs(1),
            code: 1,
        },
    );
    n.mux
        .source("file")
        .send_snapshot(vec![pod("crash", "Always", &[], &["app"])]);

    let t0 = Instant::now();
    let mut starts = Vec::new();
    while starts.len() < 5 && t0.elapsed() < Duration::from_secs(200) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if count(&n.fake, "StartContainer app") > starts.len() {
            starts.push(t0.elapsed());
        }
    }
    assert_eq!(starts.len(), 5, "starts: {starts:?}");
    // Each run lasts 1 s; the wait before the next start is the back-off, seen within a relist.
    let waits: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() - 1.0)
        .collect();
    let expected = [0.0, 10.0, 20.0, 40.0];
    for (w, e) in waits.iter().zip(expected) {
        assert!(
            (*w - e).abs() <= 1.5,
            "waits {waits:?}, expected about {expected:?}"
        );
    }
    let status = n.status.get("uid-crash").unwrap();
    let c = &status.container_statuses.unwrap()[0];
    assert!(c.restart_count >= 3, "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_in_order_before_the_app() {
    let n = node(&["file"]).await;
    for i in ["i1", "i2"] {
        n.fake.set_behavior(
            i,
            Behavior::ExitAfter {
                after: Duration::from_secs(1),
                code: 0,
            },
        );
    }
    n.mux
        .source("file")
        .send_snapshot(vec![pod("init", "Always", &["i1", "i2"], &["app"])]);
    let t0 = Instant::now();
    while count(&n.fake, "StartContainer app") == 0 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let starts: Vec<String> = n
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("StartContainer"))
        .collect();
    assert_eq!(
        starts,
        vec![
            "StartContainer i1",
            "StartContainer i2",
            "StartContainer app"
        ]
    );
    // The status is written once the sync that started the app finishes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = n.status.get("uid-init").unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let inits = status.init_container_statuses.unwrap();
    assert!(inits.iter().all(|s| {
        s.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code
            == 0
    }));
}

#[tokio::test(start_paused = true)]
async fn a_dead_sandbox_is_recreated() {
    let n = node(&["file"]).await;
    n.mux
        .source("file")
        .send_snapshot(vec![pod("web", "Always", &[], &["app"])]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sandbox = n.fake.list_pod_sandbox(None).await.unwrap().remove(0);
    n.fake.kill_sandbox(&sandbox.id);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sandboxes = n.fake.list_pod_sandbox(None).await.unwrap();
    let ready: Vec<_> = sandboxes.iter().filter(|s| s.state == 0).collect();
    assert_eq!(ready.len(), 1, "{sandboxes:?}");
    assert_eq!(ready[0].metadata.as_ref().unwrap().attempt, 1);
    assert_eq!(count(&n.fake, "StartContainer app"), 2);
}

#[tokio::test(start_paused = true)]
async fn orphans_are_removed_only_after_every_source_was_read() {
    let n = node(&["file", "http"]).await;
    let orphan = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "old".into(),
            uid: "uid-old".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        labels: HashMap::from([
            ("io.kubernetes.pod.uid".to_string(), "uid-old".to_string()),
            ("io.kubernetes.pod.name".to_string(), "old".to_string()),
            (
                "io.kubernetes.pod.namespace".to_string(),
                "default".to_string(),
            ),
        ]),
        ..Default::default()
    };
    n.fake.run_pod_sandbox(orphan, "").await.unwrap();
    n.mux
        .source("file")
        .send_snapshot(vec![pod("web", "Always", &[], &["app"])]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        n.fake.list_pod_sandbox(None).await.unwrap().len(),
        2,
        "the http source has not been read yet"
    );

    n.mux.source("http").send_snapshot(vec![]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let left = n.fake.list_pod_sandbox(None).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].metadata.as_ref().unwrap().name, "web");
}

#[tokio::test(start_paused = true)]
async fn pleg_follows_container_events_when_the_runtime_has_them() {
    let fake = FakeRuntime::new();
    fake.add_image(IMAGE);
    fake.enable_events();
    let (pleg, mut events) = Pleg::new(Arc::new(fake.clone()));
    tokio::spawn(pleg.run());
    tokio::task::yield_now().await;

    let mut sb = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "p".into(),
            uid: "uid-p".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        ..Default::default()
    };
    sb.labels
        .insert("io.kubernetes.pod.uid".into(), "uid-p".into());
    let sandbox = fake.run_pod_sandbox(sb.clone(), "").await.unwrap();
    let config = kubelet_cri::api::ContainerConfig {
        metadata: Some(kubelet_cri::api::ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(kubelet_cri::api::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        labels: HashMap::from([("io.kubernetes.pod.uid".to_string(), "uid-p".to_string())]),
        ..Default::default()
    };
    let id = fake.create_container(&sandbox, config, sb).await.unwrap();
    fake.start_container(&id).await.unwrap();
    while tokio::time::timeout(Duration::from_millis(10), events.recv())
        .await
        .is_ok()
    {}

    // Relisting is slowed to minutes, so only the event stream can report this exit in time.
    fake.exit_container(&id, 1);
    let got = tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
    assert_eq!(
        got.expect("an event well before the next relist"),
        Some("uid-p".to_string())
    );
}

// Real time: the deadline counts from the pod's start time, a wall-clock timestamp.
#[tokio::test]
async fn a_pod_past_its_active_deadline_fails_and_stops() {
    let n = node(&["file"]).await;
    let mut p = pod("deadline", "Always", &[], &["app"]);
    p.spec.as_mut().unwrap().active_deadline_seconds = Some(1);
    n.mux.source("file").send_snapshot(vec![p]);
    let t0 = Instant::now();
    let status = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = n.status.get("uid-deadline");
        if s.as_ref()
            .is_some_and(|s| s.phase.as_deref() == Some("Failed"))
            || t0.elapsed() > Duration::from_secs(10)
        {
            break s.unwrap();
        }
    };
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert!(t0.elapsed() >= Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        n.fake.calls().iter().any(|c| c == "StopContainer app"),
        "{:?}",
        n.fake.calls()
    );
    assert!(
        n.fake
            .calls()
            .iter()
            .any(|c| c == "StopPodSandbox deadline"),
        "{:?}",
        n.fake.calls()
    );
    assert_eq!(
        n.status.get("uid-deadline").unwrap().reason.as_deref(),
        Some("DeadlineExceeded"),
        "the reason stays"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pre_stop_hook_runs_inside_the_grace_period_before_the_stop() {
    let n = node(&["file"]).await;
    let mut p = pod("prestop", "Always", &[], &["app"]);
    let spec = p.spec.as_mut().unwrap();
    spec.termination_grace_period_seconds = Some(10);
    spec.containers[0].lifecycle = Some(
        serde_json::from_value(serde_json::json!({"preStop": {"sleep": {"seconds": 4}}})).unwrap(),
    );
    let source = n.mux.source("file");
    source.send_snapshot(vec![p]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&n.fake, "StartContainer app"), 1);

    source.send_snapshot(vec![]);
    let t0 = Instant::now();
    while count(&n.fake, "StopContainer app") == 0 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(5),
        "StopContainer after the 4 s hook: {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_post_start_hook_kills_the_container() {
    let n = node(&["file"]).await;
    n.fake.set_exec_result(
        "app",
        kubelet_cri::api::ExecSyncResponse {
            exit_code: 1,
            stderr: b"no".to_vec(),
            ..Default::default()
        },
    );
    let mut p = pod("poststart", "Never", &[], &["app"]);
    p.spec.as_mut().unwrap().containers[0].lifecycle = Some(
        serde_json::from_value(serde_json::json!({"postStart": {"exec": {"command": ["false"]}}}))
            .unwrap(),
    );
    n.mux.source("file").send_snapshot(vec![p]);
    let t0 = Instant::now();
    while count(&n.fake, "StopContainer app") == 0 && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        n.fake.calls().iter().any(|c| c.starts_with("ExecSync app")),
        "{:?}",
        n.fake.calls()
    );
    assert_eq!(
        count(&n.fake, "StopContainer app"),
        1,
        "{:?}",
        n.fake.calls()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = n.status.get("uid-poststart").unwrap();
    let c = &status.container_statuses.unwrap()[0];
    let t = c
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .expect("terminated under restartPolicy Never");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "the fake exits 0 on SIGTERM: {t:?}"
    );
}
