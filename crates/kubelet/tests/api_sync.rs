//! The kubelet's writes to the API server, against the test API server: pod status patches
//! (status manager API sync), the final deletion of a pod, and mirror pods for static pods.

use futures::FutureExt;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Node, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kubelet::mirror_pods::MirrorPods;
use kubelet::pod_manager::PodManager;
use kubelet::status::StatusManager;
use kubelet_sources::PodOperation;
use kubelet_test_apiserver::{DeleteOptions, TestApiServer, resources};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::util::MapRequestLayer;

const NODE: &str = "node1";

/// Every request the client sent: "METHOD path?query body".
#[derive(Clone, Default)]
struct Requests(Arc<Mutex<Vec<String>>>);

impl Requests {
    fn matching(&self, method: &str, path_part: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with(&format!("{method} ")) && r.contains(path_part))
            .cloned()
            .collect()
    }
}

fn client(server: &TestApiServer) -> (kube::Client, Requests) {
    let requests = Requests::default();
    let log = requests.clone();
    let layer = MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        // Request bodies are whole buffers: read without waiting.
        let body = req
            .body()
            .try_clone()
            .and_then(|b| b.collect_bytes().now_or_never())
            .and_then(Result::ok)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        log.0.lock().unwrap().push(format!(
            "{} {} {body}",
            req.method(),
            req.uri().path_and_query().map_or("", |p| p.as_str())
        ));
        req
    });
    let config = kube::Config::new(server.url().parse().unwrap());
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&layer)
        .build();
    (client, requests)
}

fn pods_resource() -> &'static resources::Resource {
    resources::find("", "v1", "pods").unwrap()
}

fn api_pod(server: &TestApiServer, name: &str) -> Option<Value> {
    server.store().get(pods_resource(), "default", name).ok()
}

/// Creates an API pod bound to the node; returns it as the kubelet's API source gives it.
fn create_api_pod(server: &TestApiServer, name: &str, status: Value) -> Pod {
    let created = server
        .store()
        .put(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]},
            "status": status,
        }))
        .unwrap();
    let mut pod: Pod = serde_json::from_value(created).unwrap();
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("kubernetes.io/config.source".into(), "api".into());
    pod
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap()
}

fn condition(kind: &str, status: &str) -> PodCondition {
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
        ..Default::default()
    }
}

fn running(ready: bool) -> PodStatus {
    let r = if ready { "True" } else { "False" };
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![
            condition("PodReadyToStartContainers", "True"),
            condition("Initialized", "True"),
            condition("Ready", r),
            condition("ContainersReady", r),
            condition("PodScheduled", "True"),
        ]),
        host_ip: Some("192.0.2.1".into()),
        pod_ip: Some("10.1.0.5".into()),
        qos_class: Some("BestEffort".into()),
        start_time: Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        )),
        container_statuses: Some(vec![ContainerStatus {
            name: "c".into(),
            image: "busybox".into(),
            image_id: String::new(),
            ready,
            started: Some(true),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

fn condition_of(pod: &Value, kind: &str) -> Value {
    at(pod, "status.conditions")
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or(Value::Null)
}

fn start(server: &TestApiServer) -> (Arc<StatusManager>, PodManager, Requests) {
    let (client, requests) = client(server);
    let manager = Arc::new(StatusManager::default());
    let pods = PodManager::default();
    manager.start_api_sync(client, pods.clone()).unwrap();
    (manager, pods, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_is_patched_once_and_keeps_the_scheduler_condition() {
    let server = TestApiServer::start();
    let scheduled = json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"});
    let pod = create_api_pod(
        &server,
        "web",
        json!({"phase": "Pending", "conditions": [scheduled]}),
    );
    let (manager, pods, requests) = start(&server);
    pods.insert(uid(&pod), pod.clone());

    assert!(manager.set(&pod, running(true)));
    eventually("the status reaches the API", || {
        api_pod(&server, "web").is_some_and(|p| p["status"]["phase"] == "Running")
    })
    .await;
    let api = api_pod(&server, "web").unwrap();
    assert_eq!(
        condition_of(&api, "PodScheduled"),
        scheduled,
        "the scheduler's condition stays"
    );
    assert_eq!(condition_of(&api, "Ready")["status"], "True");
    assert_eq!(api["status"]["podIP"], "10.1.0.5");
    assert_eq!(api["status"]["hostIP"], "192.0.2.1");
    assert_eq!(api["status"]["qosClass"], "BestEffort");
    assert!(api["status"]["startTime"].is_string());
    let patches = requests.matching("PATCH", "/pods/web/status");
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!(
        patches[0].contains(&format!("\"uid\":\"{}\"", uid(&pod))),
        "{patches:?}"
    );

    // The same status again is no change; a resync finds the API up to date: no patch.
    assert!(!manager.set(&pod, running(true)));
    manager.resync(&uid(&pod));
    eventually("the resync reads the pod", || {
        requests.matching("GET", "/pods/web").len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(requests.matching("PATCH", "/pods/web/status").len(), 1);

    // A real change is one more patch.
    assert!(manager.set(&pod, running(false)));
    eventually("readiness reaches the API", || {
        api_pod(&server, "web").is_some_and(|p| condition_of(&p, "Ready")["status"] == "False")
    })
    .await;
    assert_eq!(requests.matching("PATCH", "/pods/web/status").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_set_during_an_outage_reach_the_api_once_it_is_back() {
    let server = TestApiServer::start();
    let pod = create_api_pod(&server, "web", json!({"phase": "Pending"}));
    let (manager, pods, requests) = start(&server);
    pods.insert(uid(&pod), pod.clone());

    server.stop_listener();
    let mut status = running(false);
    manager.set(&pod, status.clone());
    // The sync loop's side never waits: more changes while the API is away.
    tokio::time::sleep(Duration::from_millis(800)).await;
    status.pod_ip = Some("10.1.0.9".into());
    manager.set(&pod, status.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api_pod(&server, "web").unwrap()["status"]["phase"],
        "Pending"
    );

    server.restart_listener().unwrap();
    eventually("the latest status reaches the API", || {
        api_pod(&server, "web").is_some_and(|p| p["status"]["podIP"] == "10.1.0.9")
    })
    .await;
    assert_eq!(
        api_pod(&server, "web").unwrap()["status"]["phase"],
        "Running"
    );
    // Coalesced: the latest status only, once.
    assert_eq!(requests.matching("PATCH", "/pods/web/status").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_pod_in_the_api_stays_terminal() {
    let server = TestApiServer::start();
    let pod = create_api_pod(
        &server,
        "job",
        json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
    );
    let (manager, pods, _) = start(&server);
    pods.insert(uid(&pod), pod.clone());

    manager.set(&pod, running(true));
    eventually("the kubelet's conditions reach the API", || {
        api_pod(&server, "job").is_some_and(|p| !condition_of(&p, "Initialized").is_null())
    })
    .await;
    let api = api_pod(&server, "job").unwrap();
    assert_eq!(api["status"]["phase"], "Failed");
    assert_eq!(api["status"]["reason"], "Evicted");
    assert_eq!(condition_of(&api, "Ready")["status"], "False");
    assert_eq!(condition_of(&api, "Ready")["reason"], "PodFailed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_pod_gets_no_status_of_the_old_one() {
    let server = TestApiServer::start();
    let old = create_api_pod(&server, "web", json!({"phase": "Pending"}));
    let (manager, pods, requests) = start(&server);
    pods.insert(uid(&old), old.clone());
    server
        .store()
        .delete(
            pods_resource(),
            "default",
            "web",
            &DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    let new = create_api_pod(&server, "web", json!({"phase": "Pending"}));
    assert_ne!(uid(&old), uid(&new));

    manager.set(&old, running(true));
    eventually("the syncer reads the pod", || {
        !requests.matching("GET", "/pods/web").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(requests.matching("PATCH", "/pods/web").is_empty());
    assert_eq!(
        api_pod(&server, "web").unwrap()["status"]["phase"],
        "Pending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_removed_from_the_api_once_the_kubelet_finished_it() {
    let server = TestApiServer::start();
    let pod = create_api_pod(&server, "web", json!({"phase": "Running"}));
    let (manager, pods, requests) = start(&server);
    let marked = server
        .store()
        .delete(
            pods_resource(),
            "default",
            "web",
            &DeleteOptions {
                grace_period_seconds: Some(30),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let mut deleting = pod.clone();
    deleting.metadata.deletion_timestamp =
        serde_json::from_value(marked["metadata"]["deletionTimestamp"].clone()).unwrap();
    pods.insert(uid(&pod), deleting.clone());

    // Still stopping: its status is written, the pod stays.
    manager.set(&deleting, running(true));
    eventually("the status reaches the API", || {
        api_pod(&server, "web").is_some_and(|p| !condition_of(&p, "Ready").is_null())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(requests.matching("DELETE", "/pods/web").is_empty());

    // Stopped and cleaned up: the final status, then the deletion at once, of this very pod.
    let mut stopped = running(true);
    stopped.container_statuses = Some(vec![ContainerStatus {
        name: "c".into(),
        state: Some(ContainerState {
            terminated: Some(k8s_openapi::api::core::v1::ContainerStateTerminated {
                exit_code: 143,
                reason: Some("Error".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    manager.finish(&deleting, Some(stopped));
    eventually("the pod is deleted", || api_pod(&server, "web").is_none()).await;
    let deletes = requests.matching("DELETE", "/pods/web");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    let params: Value = serde_json::from_str(
        deletes[0]
            .split_once(' ')
            .unwrap()
            .1
            .split_once(' ')
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(params["gracePeriodSeconds"], 0);
    assert_eq!(params["preconditions"]["uid"], uid(&pod).as_str());
    let patches = requests.matching("PATCH", "/pods/web/status");
    assert!(
        patches.last().unwrap().contains("\"phase\":\"Failed\""),
        "{patches:?}"
    );
}

// ---- mirror pods ----

fn create_node(server: &TestApiServer) -> Node {
    let node = server
        .store()
        .put(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}))
        .unwrap();
    serde_json::from_value(node).unwrap()
}

fn static_pod(hash: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web-node1",
            "namespace": "default",
            "uid": "static-uid",
            "labels": {"app": "web"},
            "annotations": {
                "kubernetes.io/config.hash": hash,
                "kubernetes.io/config.source": "file",
                "kubernetes.io/config.seen": "2026-01-01T00:00:00Z",
            },
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

struct Mirrors {
    server: TestApiServer,
    node: Node,
    pods: PodManager,
    mirrors: MirrorPods,
    requests: Requests,
}

fn mirrors() -> Mirrors {
    let server = TestApiServer::start();
    let node = create_node(&server);
    let (client, requests) = client(&server);
    let pods = PodManager::default();
    let (_, node_rx) = tokio::sync::watch::channel(Some(node.clone()));
    pods.mark_sources_ready();
    let mirrors = MirrorPods::new(client, NODE.into(), node_rx, pods.clone());
    Mirrors {
        server,
        node,
        pods,
        mirrors,
        requests,
    }
}

fn mirror_in_api(m: &Mirrors) -> Option<Value> {
    api_pod(&m.server, "web-node1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_pod_gets_a_mirror_pod_owned_by_the_node() {
    let m = mirrors();
    m.pods.insert("static-uid".into(), static_pod("hash-1"));
    m.mirrors.sync().await.unwrap();

    let mirror = mirror_in_api(&m).expect("a mirror pod");
    let annotations = &mirror["metadata"]["annotations"];
    assert_eq!(annotations["kubernetes.io/config.mirror"], "hash-1");
    assert_eq!(annotations["kubernetes.io/config.hash"], "hash-1");
    assert_eq!(annotations["kubernetes.io/config.source"], "file");
    assert_eq!(mirror["metadata"]["labels"]["app"], "web");
    assert_eq!(mirror["spec"]["nodeName"], NODE);
    assert_ne!(mirror["metadata"]["uid"], "static-uid");
    assert_eq!(
        mirror["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": m.node.metadata.uid.clone().unwrap(), "controller": true}])
    );
    // Known now: another pass makes nothing.
    m.mirrors.sync().await.unwrap();
    assert_eq!(m.requests.matching("POST", "/pods").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_mirror_pod_is_made_again() {
    let m = mirrors();
    m.pods.insert("static-uid".into(), static_pod("hash-1"));
    m.mirrors.sync().await.unwrap();
    let first = mirror_in_api(&m).unwrap();

    // Removed outright, as the API source reports it.
    m.server
        .store()
        .delete(
            pods_resource(),
            "default",
            "web-node1",
            &DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    m.pods.update_mirror(
        PodOperation::Remove,
        serde_json::from_value(first.clone()).unwrap(),
    );
    m.mirrors.sync().await.unwrap();
    let second = mirror_in_api(&m).expect("made again");
    assert_ne!(second["metadata"]["uid"], first["metadata"]["uid"]);

    // Deleted gracefully (kubectl delete): replaced at once.
    let marked = m
        .server
        .store()
        .delete(
            pods_resource(),
            "default",
            "web-node1",
            &DeleteOptions::default(),
        )
        .unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    m.pods.update_mirror(
        PodOperation::Delete,
        serde_json::from_value(marked).unwrap(),
    );
    m.mirrors.sync().await.unwrap();
    let third = mirror_in_api(&m).expect("replaced");
    assert_ne!(third["metadata"]["uid"], second["metadata"]["uid"]);
    assert!(third["metadata"]["deletionTimestamp"].is_null());
    let deletes = m.requests.matching("DELETE", "/pods/web-node1");
    assert_eq!(deletes.len(), 1);
    assert!(
        deletes[0].contains("\"gracePeriodSeconds\":0"),
        "{deletes:?}"
    );
    assert!(
        deletes[0].contains(second["metadata"]["uid"].as_str().unwrap()),
        "{deletes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_static_pod_gets_a_new_mirror_pod() {
    let m = mirrors();
    m.pods.insert("static-uid".into(), static_pod("hash-1"));
    m.mirrors.sync().await.unwrap();
    let first = mirror_in_api(&m).unwrap();

    m.pods.insert("static-uid".into(), static_pod("hash-2"));
    m.mirrors.sync().await.unwrap();
    let second = mirror_in_api(&m).unwrap();
    assert_eq!(
        second["metadata"]["annotations"]["kubernetes.io/config.mirror"],
        "hash-2"
    );
    assert_ne!(second["metadata"]["uid"], first["metadata"]["uid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_mirror_pod_is_deleted() {
    let m = mirrors();
    m.pods.insert("static-uid".into(), static_pod("hash-1"));
    m.mirrors.sync().await.unwrap();
    assert!(mirror_in_api(&m).is_some());

    m.pods.remove("static-uid");
    m.mirrors.sync().await.unwrap();
    assert!(mirror_in_api(&m).is_none());
    assert!(m.pods.mirror_pods().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_pods_wait_for_the_node_and_for_every_source() {
    let server = TestApiServer::start();
    let (client, _) = client(&server);
    let pods = PodManager::default();
    let (node_tx, node_rx) = tokio::sync::watch::channel(None);
    let mirrors = MirrorPods::new(client, NODE.into(), node_rx, pods.clone());
    tokio::spawn(mirrors.run());

    pods.insert("static-uid".into(), static_pod("hash-1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(api_pod(&server, "web-node1").is_none(), "no Node yet");
    node_tx.send_replace(Some(create_node(&server)));
    eventually("the mirror pod is made", || {
        api_pod(&server, "web-node1").is_some()
    })
    .await;

    // An orphan stays until the sync loop has put every source's pods in the manager.
    pods.remove("static-uid");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(api_pod(&server, "web-node1").is_some());
    pods.mark_sources_ready();
    pods.remove("static-uid");
    eventually("the orphan is deleted", || {
        api_pod(&server, "web-node1").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_pods_status_goes_to_its_mirror_pod() {
    let m = mirrors();
    let (client, requests) = client(&m.server);
    let manager = Arc::new(StatusManager::default());
    manager.start_api_sync(client, m.pods.clone()).unwrap();
    let pod = static_pod("hash-1");
    m.pods.insert("static-uid".into(), pod.clone());

    // No mirror yet: nothing written.
    manager.set(&pod, running(true));
    eventually("the syncer looks for the mirror", || {
        !requests.matching("GET", "/pods/web-node1").is_empty()
    })
    .await;
    assert!(requests.matching("PATCH", "/pods/").is_empty());

    m.mirrors.sync().await.unwrap();
    manager.resync("static-uid");
    eventually("the status reaches the mirror pod", || {
        mirror_in_api(&m).is_some_and(|p| p["status"]["phase"] == "Running")
    })
    .await;
    let mirror = mirror_in_api(&m).unwrap();
    let patch = &requests.matching("PATCH", "/pods/web-node1/status")[0];
    assert!(
        patch.contains(mirror["metadata"]["uid"].as_str().unwrap()),
        "{patch}"
    );
}
