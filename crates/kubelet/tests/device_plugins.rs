//! Device plugins end to end: the kubelet binary against the test API server and the private
//! containerd, with the test kit's device plugin registering the classic way
//! (device-plugins/kubelet.sock) and through the plugin watcher (plugins_registry).

mod support;

use kubelet::devicemanager::checkpoint;
use kubelet_cri::{RuntimeService, api};
use kubelet_plugin_apis::podresources::{v1, v1alpha1};
use kubelet_plugin_apis::unix;
use kubelet_testkit::device_plugin::{DevicePluginConfig, TestDevicePlugin};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::cluster::{Backend, Cluster, bound_pod, eventually};
use support::{BUSYBOX, Kubelet};

const START: Duration = Duration::from_secs(40);
const RESOURCE: &str = "example.com/dev";

/// The node's (capacity, allocatable) of RESOURCE, as the API server has them.
fn amounts(cluster: &Cluster, node: &str) -> Option<(String, String)> {
    let n = cluster.get("node", node, "default")?;
    let status = &n["status"];
    Some((
        status["capacity"][RESOURCE].as_str()?.to_string(),
        status["allocatable"][RESOURCE].as_str()?.to_string(),
    ))
}

async fn wait_amounts(cluster: &Cluster, k: &Kubelet, capacity: &str, allocatable: &str) {
    let want = (capacity.to_string(), allocatable.to_string());
    eventually(
        &format!("{RESOURCE} capacity {capacity}, allocatable {allocatable}"),
        START,
        k,
        || (amounts(cluster, &k.node).as_ref() == Some(&want)).then_some(()),
    )
    .await;
}

/// A pod on `node` whose container asks for `count` devices and prints the ids it got;
/// `extra_spec` goes into its spec.
fn device_pod(name: &str, node: &str, count: u32, extra_spec: &str) -> String {
    let spec = bound_pod(
        name,
        node,
        "echo ids=$TEST_DEVICE_IDS; sleep 3600",
        extra_spec,
    );
    format!(
        "{spec}    resources:\n      limits:\n        {RESOURCE}: \"{count}\"\n      requests:\n        {RESOURCE}: \"{count}\"\n"
    )
}

/// The first line the container `app` of pod `name` logged, from its CRI log file.
fn first_log_line(k: &Kubelet, name: &str) -> Option<String> {
    let logs = k.dir.join("pod-logs");
    let pod_dir = std::fs::read_dir(&logs)
        .ok()?
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("default_{name}_"))
        })?
        .path();
    let text = std::fs::read_to_string(pod_dir.join("app/0.log")).ok()?;
    // CRI log lines: TIME STREAM TAG MESSAGE.
    let line = text.lines().next()?;
    Some(line.splitn(4, ' ').nth(3)?.to_string())
}

/// The id of the running container of pod `uid` (pods of earlier runs may share its name).
async fn running_app(k: &Kubelet, uid: &str) -> Option<String> {
    let cri = k.cri().await;
    cri.list_containers(None)
        .await
        .unwrap()
        .into_iter()
        .find(|c| {
            c.labels.get("io.kubernetes.pod.uid").map(String::as_str) == Some(uid)
                && c.state == api::ContainerState::ContainerRunning as i32
        })
        .map(|c| c.id)
}

fn pod_resources_socket(k: &Kubelet) -> PathBuf {
    k.dir.join("root/pod-resources/kubelet.sock")
}

async fn list_v1(socket: &Path) -> Vec<v1::PodResources> {
    let mut client =
        v1::pod_resources_lister_client::PodResourcesListerClient::new(unix::channel(socket));
    client
        .list(v1::ListPodResourcesRequest {})
        .await
        .expect("pod-resources v1 List")
        .into_inner()
        .pod_resources
}

fn start_plugin(k: &Kubelet, registry: bool) -> TestDevicePlugin {
    let plugin_dir = k.dir.join("root/device-plugins");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let mut cfg = DevicePluginConfig::new(RESOURCE, 2, &plugin_dir);
    cfg.preferred = true;
    cfg.pre_start = true;
    if registry {
        let dir = k.dir.join("root/plugins_registry");
        std::fs::create_dir_all(&dir).unwrap();
        cfg.registry_dir = Some(dir);
    }
    TestDevicePlugin::start(cfg).expect("the test device plugin starts")
}

fn allocations(plugin: &TestDevicePlugin) -> Vec<String> {
    plugin
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("Allocate "))
        .collect()
}

#[tokio::test]
async fn devices_are_reported_allocated_listed_kept_across_a_restart_and_dropped_with_the_plugin() {
    let _serial = support::serial().await;
    let cluster = Cluster::start(Backend::Test);
    let node = "e2e-devices";
    let mut k = cluster
        .kubelet(node)
        .with_config("nodeStatusUpdateFrequency: 1s\ndevicePluginEndpointGracePeriod: 4s\n");
    k.start();
    let plugin = start_plugin(&k, false);
    wait_amounts(&cluster, &k, "2", "2").await;

    // Allocation: GetPreferredAllocation picks the last device, Allocate's env reaches the
    // container, PreStartContainer runs before it starts.
    cluster.create(&device_pod("gpu-user", node, 1, ""));
    let line = eventually("the container printed its devices", START, &k, || {
        first_log_line(&k, "gpu-user")
    })
    .await;
    assert_eq!(line, "ids=dev-1");
    let calls = plugin.calls();
    let at = |prefix: &str| {
        calls
            .iter()
            .position(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} call in {calls:?}"))
    };
    assert!(at("GetPreferredAllocation 1 of dev-0,dev-1") < at("Allocate dev-1"));
    assert!(at("Allocate dev-1") < at("PreStartContainer dev-1"));

    // The pod-resources API lists the device for the container, in both versions.
    let socket = pod_resources_socket(&k);
    let pods = list_v1(&socket).await;
    let pod = pods
        .iter()
        .find(|p| p.name == "gpu-user")
        .expect("gpu-user listed");
    assert_eq!(pod.namespace, "default");
    assert_eq!(pod.containers[0].name, "app");
    assert_eq!(pod.containers[0].devices[0].resource_name, RESOURCE);
    assert_eq!(pod.containers[0].devices[0].device_ids, vec!["dev-1"]);
    let mut alpha = v1alpha1::pod_resources_lister_client::PodResourcesListerClient::new(
        unix::channel(&socket),
    );
    let listed = alpha
        .list(v1alpha1::ListPodResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.pod_resources.iter().any(|p| p.name == "gpu-user"
        && p.containers[0].devices[0].device_ids == vec!["dev-1"]));
    let mut v1_client =
        v1::pod_resources_lister_client::PodResourcesListerClient::new(unix::channel(&socket));
    let allocatable = v1_client
        .get_allocatable_resources(v1::AllocatableResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(allocatable.devices.len(), 2);
    let got = v1_client
        .get(v1::GetPodResourcesRequest {
            pod_name: "gpu-user".into(),
            pod_namespace: "default".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.pod_resources.unwrap().containers[0].devices[0].device_ids,
        vec!["dev-1"]
    );

    // The checkpoint holds the allocation, with a valid checksum.
    let cp_path = k
        .dir
        .join("root/device-plugins")
        .join(checkpoint::FILE_NAME);
    let data = checkpoint::read(&cp_path).unwrap().expect("a checkpoint");
    let entries = data.pod_device_entries.expect("an entry");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].container_name, "app");

    // More devices than exist: refused with upstream's reason and message.
    cluster.create(&device_pod("too-greedy", node, 3, ""));
    let status = eventually("the greedy pod refused", START, &k, || {
        let p = cluster.get("pod", "too-greedy", "default")?;
        (p["status"]["phase"] == "Failed").then(|| p["status"].clone())
    })
    .await;
    assert_eq!(status["reason"], "UnexpectedAdmissionError");
    assert_eq!(
        status["message"],
        "Allocate failed due to requested number of devices unavailable for example.com/dev. Requested: 3, Available: 1, which is unexpected"
    );

    // An init container's device passes on to the app container, as upstream reuses it: the
    // one free device serves both.
    let setup = format!(
        "  initContainers:\n  - name: setup\n    image: {BUSYBOX}\n    imagePullPolicy: IfNotPresent\n    command: [\"/bin/true\"]\n    resources:\n      limits:\n        {RESOURCE}: \"1\"\n"
    );
    cluster.create(&device_pod("reuser", node, 1, &setup));
    let line = eventually(
        "the reusing container printed its devices",
        START,
        &k,
        || first_log_line(&k, "reuser"),
    )
    .await;
    assert_eq!(line, "ids=dev-0");
    let allocated = vec!["Allocate dev-1", "Allocate dev-0", "Allocate dev-0"];
    assert_eq!(allocations(&plugin), allocated);

    // A restart keeps the allocation: the container is not replaced, nothing is allocated again.
    let uid = cluster.get("pod", "gpu-user", "default").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let container_id = running_app(&k, &uid).await.expect("gpu-user's app runs");
    k.stop();
    k.start();
    eventually("the plugin registered again", START, &k, || {
        (plugin.calls().iter().filter(|c| *c == "Registered").count() >= 2).then_some(())
    })
    .await;
    wait_amounts(&cluster, &k, "2", "2").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(running_app(&k, &uid).await, Some(container_id));
    assert_eq!(allocations(&plugin), allocated);
    // The restarted kubelet lists a pod once its API source has given it back.
    support::wait_for(
        "pod-resources lists gpu-user's device again",
        START,
        &k,
        || async {
            let pods = list_v1(&socket).await;
            pods.iter()
                .any(|p| {
                    p.name == "gpu-user"
                        && p.containers
                            .first()
                            .and_then(|c| c.devices.first())
                            .map(|d| &d.device_ids)
                            == Some(&vec!["dev-1".to_string()])
                })
                .then_some(())
        },
    )
    .await;

    // The plugin dies: allocatable drops to zero at once, capacity after the grace period.
    drop(plugin);
    wait_amounts(&cluster, &k, "2", "0").await;
    wait_amounts(&cluster, &k, "0", "0").await;

    cluster
        .kubectl(&[
            "delete",
            "pod",
            "gpu-user",
            "too-greedy",
            "reuser",
            "--grace-period=1",
        ])
        .unwrap();
    eventually("the devices freed in the checkpoint", START, &k, || {
        let data = checkpoint::read(&cp_path).ok()??;
        data.pod_device_entries.is_none().then_some(())
    })
    .await;
    k.cleanup().await;
}

#[tokio::test]
async fn a_plugin_registers_through_the_plugin_watcher() {
    let _serial = support::serial().await;
    let cluster = Cluster::start(Backend::Test);
    let node = "e2e-plugin-watcher";
    let mut k = cluster
        .kubelet(node)
        .with_config("nodeStatusUpdateFrequency: 1s\ndevicePluginEndpointGracePeriod: 2s\n");
    k.start();
    let plugin = start_plugin(&k, true);
    wait_amounts(&cluster, &k, "2", "2").await;
    let calls = plugin.calls();
    assert!(calls.contains(&"GetInfo".to_string()), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("NotifyRegistrationStatus true")),
        "{calls:?}"
    );
    // The registration socket goes: the plugin is deregistered and its devices expire.
    drop(plugin);
    wait_amounts(&cluster, &k, "2", "0").await;
    wait_amounts(&cluster, &k, "0", "0").await;
    k.cleanup().await;
}
