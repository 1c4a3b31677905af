//! Pods from the API on the fake runtime and the test API server: a pod deleted in the API is
//! stopped by the sync loop, removed from the node by its worker, its status finished, and then
//! deleted from the API by the status manager with grace 0 and a UID precondition; a mirror pod
//! is never run.

use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use kubelet::cm::cgroups::PodCgroups;
use kubelet::cm::machine::MachineInfo;
use kubelet::pleg::Pleg;
use kubelet::pod_manager::PodManager;
use kubelet::pod_sync::PodSyncer;
use kubelet::pod_workers::PodWorkers;
use kubelet::probes::Probes;
use kubelet::server::healthz::Health;
use kubelet::status::StatusManager;
use kubelet::sync_loop::SyncLoop;
use kubelet_cri::Runtime;
use kubelet_cri::fake::FakeRuntime;
use kubelet_kuberuntime::dns::DnsOptions;
use kubelet_kuberuntime::events::LogRecorder;
use kubelet_kuberuntime::manager::{ManagerConfig, RuntimeManager};
use kubelet_kuberuntime::sandbox_config::SandboxOptions;
use kubelet_prober::handlers::Handlers;
use kubelet_prober::{LifecycleHandlers, ProbeManager};
use kubelet_sources::Mux;
use kubelet_test_apiserver::{DeleteOptions, TestApiServer, resources};
use kubelet_volumes::VolumeManager;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::util::MapRequestLayer;

const IMAGE: &str = "localhost/busybox:1.35";

/// A client that records each request's method, path and body.
fn client(server: &TestApiServer) -> (kube::Client, Arc<Mutex<Vec<String>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let layer = MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        let body = req
            .body()
            .try_clone()
            .and_then(|b| b.collect_bytes().now_or_never())
            .and_then(Result::ok)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        log.lock()
            .unwrap()
            .push(format!("{} {} {body}", req.method(), req.uri().path()));
        req
    });
    let config = kube::Config::new(server.url().parse().unwrap());
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&layer)
        .build();
    (client, requests)
}

struct Kubelet {
    fake: FakeRuntime,
    mux: Mux,
    pods: PodManager,
    _dir: tempfile::TempDir,
}

/// A kubelet on the fake runtime whose status manager writes to `client`.
async fn kubelet(client: kube::Client) -> Kubelet {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    fake.add_image(IMAGE);
    let runtime: Arc<dyn Runtime> = Arc::new(fake.clone());
    let root = dir.path().join("root");
    let volumes = Arc::new(VolumeManager::new(root.clone()));
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
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
    let pods = PodManager::default();
    status.start_api_sync(client, pods.clone()).unwrap();
    let syncer = Arc::new(PodSyncer {
        runtime: manager,
        volumes,
        cgroups: PodCgroups::unmanaged("/"),
        status,
        events: Arc::new(LogRecorder),
        pods_dir: root.join("pods"),
        pod_logs_dir: dir.path().join("logs"),
        host_ip: Some("192.0.2.10".into()),
        sync_frequency: Duration::from_secs(60),
        probes: Probes::new(prober),
        metrics: Arc::new(kubelet_stats::KubeletMetrics::new(
            "node1",
            kubelet_stats::BuildInfo::default(),
        )),
    });
    let (mux, updates) = Mux::new();
    let machine = MachineInfo {
        cpu_milli: 4000,
        memory_bytes: 8 << 30,
    };
    let sync_loop = SyncLoop::new(
        pods.clone(),
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
    Kubelet {
        fake,
        mux,
        pods,
        _dir: dir,
    }
}

fn pods() -> &'static resources::Resource {
    resources::find("", "v1", "pods").unwrap()
}

fn api_pod(server: &TestApiServer) -> Option<Value> {
    server.store().get(pods(), "default", "web").ok()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_in_the_api_is_stopped_cleaned_and_then_removed() {
    let server = TestApiServer::start();
    let created = server
        .store()
        .put(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "nodeName": "node1",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}],
            },
            "status": {"phase": "Pending"},
        }))
        .unwrap();
    let pod: Pod = serde_json::from_value(created).unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let (client, requests) = client(&server);
    let kubelet = kubelet(client).await;
    let api = kubelet.mux.source("api");

    api.send_snapshot(vec![pod.clone()]);
    eventually("the pod runs and the API says so", || {
        api_pod(&server).is_some_and(|p| p["status"]["phase"] == "Running")
    })
    .await;

    let marked = server
        .store()
        .delete(
            pods(),
            "default",
            "web",
            &DeleteOptions {
                grace_period_seconds: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let deleting: Pod = serde_json::from_value(marked).unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    api.send_snapshot(vec![deleting]);
    eventually("the pod leaves the API", || api_pod(&server).is_none()).await;

    let requests = requests.lock().unwrap().clone();
    let deletes: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("DELETE "))
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    let params: Value = serde_json::from_str(deletes[0].splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(params["gracePeriodSeconds"], 0);
    assert_eq!(params["preconditions"]["uid"], uid.as_str());
    // The last status written before the deletion: Failed, its container stopped.
    let last_patch = requests
        .iter()
        .rev()
        .find(|r| r.starts_with("PATCH "))
        .unwrap();
    assert!(last_patch.contains("\"phase\":\"Failed\""), "{last_patch}");
    // Nothing of the pod was left in the runtime when it went.
    let calls = kubelet.fake.calls();
    assert!(
        calls.iter().any(|c| c.starts_with("RemovePodSandbox")),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_pod_from_the_api_is_never_run() {
    let server = TestApiServer::start();
    let (client, _) = client(&server);
    let kubelet = kubelet(client).await;
    let mirror: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "web-node1",
            "namespace": "default",
            "uid": "mirror-uid",
            "annotations": {"kubernetes.io/config.mirror": "hash-1", "kubernetes.io/config.hash": "hash-1"},
        },
        "spec": {
            "nodeName": "node1",
            "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}],
        },
    }))
    .unwrap();
    kubelet.mux.source("api").send_snapshot(vec![mirror]);
    eventually("the pod manager knows the mirror pod", || {
        kubelet.pods.mirror_pod("default/web-node1").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!kubelet.pods.contains("mirror-uid"));
    let calls = kubelet.fake.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("RunPodSandbox")),
        "{calls:?}"
    );
}

/// The mirror pod reconciler, housekeeping and the CPU and device managers remove what no pod
/// claims only once the sync loop holds every source's pods: a static pod still in the channel
/// must not get its mirror pod deleted as an orphan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_ready_only_once_their_pods_are_in_the_pod_manager() {
    let server = TestApiServer::start();
    let (client, _) = client(&server);
    let kubelet = kubelet(client).await;
    let api = kubelet.mux.source("api");
    let file = kubelet.mux.source("file");
    let static_pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "web-node1",
            "namespace": "default",
            "uid": "static-uid",
            "annotations": {"kubernetes.io/config.source": "file", "kubernetes.io/config.hash": "static-uid"},
        },
        "spec": {
            "nodeName": "node1",
            "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}],
        },
    }))
    .unwrap();

    api.send_snapshot(Vec::new());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!kubelet.pods.sources_ready(), "the file source is unread");

    file.send_snapshot(vec![static_pod]);
    eventually("every source's pods are in the pod manager", || {
        kubelet.pods.sources_ready()
    })
    .await;
    assert!(kubelet.pods.contains("static-uid"));
}
