//! CSI end to end: the kubelet binary with the test kit's CSI node driver registering through
//! the plugin watcher. Registration records the driver in the cluster (CSINode, the node's
//! csi.volume.kubernetes.io/nodeid annotation, topology labels), a driver speaking no CSI 1.x is
//! refused with upstream's error, and deregistration takes the driver out again. A claim bound to
//! a CSI persistent volume waits while unbound, then is staged, published, and (after a kubelet
//! restart) unpublished and unstaged in upstream's layout, its data outliving the pod that wrote
//! it. While published, the driver's NodeGetVolumeStats figures show in /stats/summary (with the
//! claim's pvcRef) and as the kubelet_volume_stats_* series of the claim in /metrics, before
//! and after the restart, and leave with the pod. A driver that attaches holds its pod until
//! the attach-detach controller (played by the test) reports the volume attached, the volume
//! being in the Node's volumesInUse meanwhile and until the pod is gone. A CSI ephemeral inline
//! volume waits for its driver, is published (never staged) under upstream's handle with the
//! pod's info in its context, and is unpublished when its pod goes, across a kubelet restart; a
//! driver whose CSIDriver does not list Ephemeral is refused with upstream's error. A pod's
//! fsGroup owns a claim's volume with an fsType under the default fsGroupPolicy, and is handed
//! as volume_mount_group (nothing chowned) to a driver with VOLUME_MOUNT_GROUP; a driver with
//! SINGLE_NODE_MULTI_WRITER is asked for that mode for ReadWriteOnce; a CSIDriver's
//! tokenRequests give the driver tokens of the pod's service account that the API server
//! accepts for their audiences, published again at each pod sync with requiresRepublish (and
//! only then). A raw block claim (loop devices behind the test driver) reaches containers as a
//! device at their devicePath, keeps what one pod wrote for the next, and is unmapped,
//! unpublished and unstaged across a restart, leaving no loop device; a kubelet killed
//! mid-publish leaves no mount or stage behind once the next one has run and torn down the
//! pod, and one killed mid-stage whose pod is deleted before the next one starts has that one
//! unstage the volume. Every case
//! runs against the test API server and the real kube-apiserver (Node authorizer,
//! NodeRestriction).

mod support;

use kubelet_plugin_apis::csi::v1 as csi;
use kubelet_plugin_apis::csi::v1::volume_capability::access_mode::Mode;
use kubelet_testkit::csi_driver::{CsiDriverConfig, TestCsiDriver};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::cluster::{Backend, Cluster, bound_pod, eventually};
use support::{Kubelet, free_port, http_get, wait_for};

const START: Duration = Duration::from_secs(40);
const DRIVER: &str = "csi.kubelet-rs.test";
const ZONE_KEY: &str = "topology.kubelet-rs.test/zone";
const NODE_ID_ANNOTATION: &str = "csi.volume.kubernetes.io/nodeid";

crate::against_both_api_servers!(
    a_csi_driver_registers_in_the_cluster_and_deregisters,
    a_claim_on_a_csi_volume_is_staged_published_and_torn_down,
    an_attaching_driver_waits_for_the_attach_detach_controller,
    an_inline_csi_volume_is_published_for_its_pod_alone,
    csi_volumes_get_the_pods_fs_group_access_mode_and_tokens,
    a_block_claim_is_mapped_into_containers_and_torn_down,
    a_kubelet_killed_mid_publish_leaves_nothing_behind,
    a_kubelet_killed_mid_stage_whose_pod_goes_meanwhile_leaves_nothing_behind,
);

fn driver_config(k: &Kubelet, name: &str) -> CsiDriverConfig {
    let mut cfg = CsiDriverConfig::new(
        name,
        &k.dir.join(format!("csi-{name}")),
        &k.dir.join("root/plugins_registry"),
    );
    cfg.node_id = format!("{}-id", k.node);
    cfg.topology = BTreeMap::from([(ZONE_KEY.to_string(), "zone-1".to_string())]);
    cfg.max_volumes = 7;
    cfg
}

/// Starts the kubelet and waits until its Node is registered.
async fn start_registered(cluster: &Cluster, k: &mut Kubelet) {
    k.start();
    let node = k.node.clone();
    eventually("the node is registered", START, k, || {
        cluster.get("node", &node, "default")
    })
    .await;
}

/// Waits until the kubelet has accepted `driver`'s registration at least `times` times.
async fn registered(k: &Kubelet, driver: &TestCsiDriver, times: usize) {
    eventually("the driver registered with the kubelet", START, k, || {
        let accepted = driver
            .calls()
            .iter()
            .filter(|c| *c == "NotifyRegistrationStatus true ")
            .count();
        (accepted >= times).then_some(())
    })
    .await;
}

fn csinode(cluster: &Cluster, node: &str) -> Option<Value> {
    cluster.get("csinode", node, "default")
}

/// The node's nodeid annotation, parsed.
fn node_ids(cluster: &Cluster, node: &str) -> Option<Value> {
    let n = cluster.get("node", node, "default")?;
    let text = n["metadata"]["annotations"][NODE_ID_ANNOTATION].as_str()?;
    serde_json::from_str(text).ok()
}

async fn a_csi_driver_registers_in_the_cluster_and_deregisters(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-csi-registration";
    let mut k = cluster.kubelet(node);
    start_registered(&cluster, &mut k).await;

    let driver = TestCsiDriver::start(driver_config(&k, DRIVER)).expect("the CSI driver starts");
    let expected_driver = json!({
        "name": DRIVER,
        "nodeID": format!("{node}-id"),
        "topologyKeys": [ZONE_KEY],
        "allocatable": {"count": 7},
    });
    let registered = eventually("the driver in the node's CSINode", START, &k, || {
        let c = csinode(&cluster, node)?;
        (c["spec"]["drivers"] == json!([expected_driver])).then_some(c)
    })
    .await;
    let owner = &registered["metadata"]["ownerReferences"][0];
    let node_obj = cluster.get("node", node, "default").unwrap();
    assert_eq!(owner["kind"], "Node");
    assert_eq!(owner["name"], node);
    assert_eq!(owner["uid"], node_obj["metadata"]["uid"]);
    eventually(
        "the node id annotation and topology label",
        START,
        &k,
        || {
            let n = cluster.get("node", node, "default")?;
            let labelled = n["metadata"]["labels"][ZONE_KEY] == "zone-1";
            (labelled && node_ids(&cluster, node)? == json!({DRIVER: format!("{node}-id")}))
                .then_some(())
        },
    )
    .await;
    let calls = driver.calls();
    assert!(calls.contains(&"GetInfo".to_string()), "{calls:?}");
    assert!(calls.contains(&"NodeGetInfo".to_string()), "{calls:?}");
    assert!(
        calls.contains(&"NotifyRegistrationStatus true ".to_string()),
        "{calls:?}"
    );

    // A driver that speaks only CSI 2.x is told why it is refused, and recorded nowhere.
    let mut v2 = driver_config(&k, "csi-v2.kubelet-rs.test");
    v2.versions = vec!["2.0.0".into()];
    let refused = TestCsiDriver::start(v2).expect("the second CSI driver starts");
    let status = eventually("the 2.x driver refused", START, &k, || {
        refused
            .calls()
            .into_iter()
            .find(|c| c.starts_with("NotifyRegistrationStatus"))
    })
    .await;
    assert!(
        status.starts_with("NotifyRegistrationStatus false ")
            && status
                .contains("validation failed for CSI Driver csi-v2.kubelet-rs.test at endpoint")
            && status.contains("None of the versions specified [\"2.0.0\"] are supported"),
        "{status}"
    );
    assert!(!refused.calls().contains(&"NodeGetInfo".to_string()));
    drop(refused);

    // The registration socket goes: the driver leaves the CSINode and the annotation; the
    // topology label stays, as upstream leaves it.
    drop(driver);
    eventually(
        "the driver out of the CSINode and the annotation",
        START,
        &k,
        || {
            let c = csinode(&cluster, node)?;
            let n = cluster.get("node", node, "default")?;
            // The real server stores an empty list as none at all.
            let drivers = c["spec"]["drivers"].as_array().map_or(0, Vec::len);
            let gone = drivers == 0 && n["metadata"]["annotations"][NODE_ID_ANNOTATION].is_null();
            gone.then_some(n)
        },
    )
    .await;
    let n = cluster.get("node", node, "default").unwrap();
    assert_eq!(n["metadata"]["labels"][ZONE_KEY], "zone-1");
    k.cleanup().await;
}

/// The driver's node-only, non-attaching object, a CSI PV and a claim, not bound yet.
fn create_claim(cluster: &Cluster, pv: &str, claim: &str, handle: &str) {
    create_claim_in_mode(cluster, pv, claim, handle, "Filesystem");
}

/// As [`create_claim`], the PV and the claim of volumeMode `mode`.
fn create_claim_in_mode(cluster: &Cluster, pv: &str, claim: &str, handle: &str, mode: &str) {
    cluster.create(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {DRIVER}\nspec:\n  attachRequired: false\n---\n\
         apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {pv}\nspec:\n  volumeMode: {mode}\n  capacity:\n    storage: 1Gi\n  accessModes: [ReadWriteOnce]\n  csi:\n    driver: {DRIVER}\n    volumeHandle: {handle}\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {claim}\n  namespace: default\nspec:\n  volumeMode: {mode}\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  resources:\n    requests:\n      storage: 1Gi\n"
    ));
}

/// Binds the claim to the PV as the PV controller would.
fn bind_claim(cluster: &Cluster, pv: &str, claim: &str) {
    let claim_uid = cluster.get("pvc", claim, "default").unwrap()["metadata"]["uid"].clone();
    let claim_ref = json!({"spec": {"claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "default", "name": claim, "uid": claim_uid}}});
    let patches = [
        (vec!["pv", pv], claim_ref.to_string(), false),
        (
            vec!["pv", pv],
            r#"{"status":{"phase":"Bound"}}"#.to_string(),
            true,
        ),
        (
            vec!["pvc", claim, "-n", "default"],
            json!({"spec": {"volumeName": pv}}).to_string(),
            false,
        ),
        (
            vec!["pvc", claim, "-n", "default"],
            r#"{"status":{"phase":"Bound"}}"#.to_string(),
            true,
        ),
    ];
    for (target, patch, status) in patches {
        let mut args = vec!["patch"];
        args.extend(target);
        if status {
            args.push("--subresource=status");
        }
        args.extend(["--type=merge", "-p", &patch]);
        cluster
            .kubectl(&args)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    }
}

/// A pod on `node` running `script` with the claim mounted at /data.
fn claim_pod(name: &str, node: &str, claim: &str, script: &str) -> String {
    with_data_volume(
        name,
        node,
        script,
        &format!("persistentVolumeClaim:\n      claimName: {claim}\n"),
    )
}

/// A pod on `node` running `script` with volume `data` (of `source`, its YAML under the volume,
/// indented for it) mounted at /data.
fn with_data_volume(name: &str, node: &str, script: &str, source: &str) -> String {
    let spec = bound_pod(
        name,
        node,
        script,
        &format!("  volumes:\n  - name: data\n    {source}"),
    );
    format!("{spec}    volumeMounts:\n    - name: data\n      mountPath: /data\n")
}

/// The first line container `app` of pod `name` logged.
fn first_log_line(k: &Kubelet, name: &str) -> Option<String> {
    let logs = k.dir.join("pod-logs");
    let pod_dir = std::fs::read_dir(&logs).ok()?.flatten().find(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with(&format!("default_{name}_"))
    })?;
    let text = std::fs::read_to_string(pod_dir.path().join("app/0.log")).ok()?;
    // CRI log lines: TIME STREAM TAG MESSAGE.
    Some(text.lines().next()?.splitn(4, ' ').nth(3)?.to_string())
}

/// The driver's volume calls, by method name.
fn volume_calls(driver: &TestCsiDriver) -> Vec<String> {
    driver
        .calls()
        .into_iter()
        .filter_map(|c| c.split(' ').next().map(str::to_string))
        .filter(|m| {
            [
                "NodeStageVolume",
                "NodePublishVolume",
                "NodeUnpublishVolume",
                "NodeUnstageVolume",
            ]
            .contains(&m.as_str())
        })
        .collect()
}

/// The pod's volume entry named `volume` in /stats/summary.
async fn summary_volume(port: u16, pod: &str, volume: &str) -> Option<Value> {
    let (code, body) = http_get(port, "/stats/summary").await?;
    let summary: Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    let pod = summary["pods"]
        .as_array()?
        .iter()
        .find(|p| p["podRef"]["name"] == pod)?;
    pod["volume"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == volume)
        .cloned()
}

/// The kubelet_volume_stats_* samples of claim default/`claim` in /metrics, by family name.
async fn claim_metrics(port: u16, claim: &str) -> Option<BTreeMap<String, f64>> {
    let (code, body) = http_get(port, "/metrics").await?;
    if code != 200 {
        return None;
    }
    let labels = format!("{{namespace=\"default\",persistentvolumeclaim=\"{claim}\"}} ");
    Some(
        body.lines()
            .filter(|l| l.starts_with("kubelet_volume_stats_"))
            .filter_map(|l| {
                let (name, value) = l.split_once(&labels)?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect(),
    )
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn a_claim_on_a_csi_volume_is_staged_published_and_torn_down(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-csi-volumes";
    let port = free_port();
    // Volume figures every second rather than every minute; the condition with its gate.
    let mut k = cluster.kubelet(node).with_args(&[
        &format!("--read-only-port={port}"),
        "--volume-stats-agg-period=1s",
        "--feature-gates=CSIVolumeHealth=true",
    ]);
    start_registered(&cluster, &mut k).await;
    let mut cfg = driver_config(&k, DRIVER);
    cfg.volume_capacity_bytes = 5 << 20;
    cfg.volume_inodes = 1000;
    cfg.volume_condition = true;
    let driver = TestCsiDriver::start(cfg.clone()).expect("the CSI driver starts");
    registered(&k, &driver, 1).await;
    create_claim(&cluster, "pv-e2e", "claim-e2e", "vol-e2e");
    let root = k.dir.join("root");
    let global = root
        .join("plugins/kubernetes.io/csi")
        .join(DRIVER)
        .join(sha256_hex("vol-e2e"));

    cluster.create(&claim_pod(
        "writer",
        node,
        "claim-e2e",
        "echo written-by-the-first-pod > /data/greeting; sleep 3600",
    ));
    // The pod waits while its claim is unbound, saying why.
    let message = failed_mount(&cluster, &k, "writer").await;
    assert!(
        message.contains(
            "error processing PVC default/claim-e2e: PVC default/claim-e2e has non-bound phase (\"Pending\") or empty pvc.Spec.VolumeName (\"\")"
        ),
        "{message}"
    );
    assert!(volume_calls(&driver).is_empty());
    bind_claim(&cluster, "pv-e2e", "claim-e2e");
    k.wait_running("writer", &["app"], START).await;
    let written = eventually("the file in the driver's volume dir", START, &k, || {
        std::fs::read_to_string(cfg.data_dir.join("vol-e2e/greeting")).ok()
    })
    .await;
    assert_eq!(written, "written-by-the-first-pod\n");
    let uid = cluster.get("pod", "writer", "default").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let pod_volume = root.join(format!("pods/{uid}/volumes/kubernetes.io~csi/pv-e2e"));
    let vol_data: Value =
        serde_json::from_slice(&std::fs::read(pod_volume.join("vol_data.json")).unwrap()).unwrap();
    assert_eq!(
        vol_data,
        json!({
            "specVolID": "pv-e2e",
            "volumeHandle": "vol-e2e",
            "driverName": DRIVER,
            "nodeName": node,
            "attachmentID": format!("csi-{}", sha256_hex(&format!("vol-e2e{DRIVER}{node}"))),
            "volumeLifecycleMode": "Persistent",
        })
    );
    let calls = driver.calls();
    assert!(
        calls.contains(&format!(
            "NodeStageVolume vol-e2e {}",
            global.join("globalmount").display()
        )),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!(
            "NodePublishVolume vol-e2e {}",
            pod_volume.join("mount").display()
        )),
        "{calls:?}"
    );

    // The driver's figures: a 5 MiB, 1000-inode volume holding the volume dir and one 25-byte
    // file, healthy.
    let greeting = "written-by-the-first-pod\n".len() as u64;
    let expected_volume = json!({
        "name": "data",
        "pvcRef": {"name": "claim-e2e", "namespace": "default"},
        "capacityBytes": 5 << 20,
        "availableBytes": (5 << 20) - greeting,
        "usedBytes": greeting,
        "inodes": 1000,
        "inodesFree": 998,
        "inodesUsed": 2,
        "volumeHealthStats": {"abnormal": false},
    });
    let driver_figures = || async {
        let mut volume = summary_volume(port, "writer", "data").await?;
        volume.as_object_mut()?.remove("time")?;
        (volume == expected_volume).then_some(())
    };
    wait_for(
        "the driver's figures in /stats/summary",
        START,
        &k,
        &driver_figures,
    )
    .await;
    let expected_metrics: BTreeMap<String, f64> = [
        ("capacity_bytes", (5 << 20) as f64),
        ("available_bytes", ((5 << 20) - greeting) as f64),
        ("used_bytes", greeting as f64),
        ("inodes", 1000.0),
        ("inodes_free", 998.0),
        ("inodes_used", 2.0),
        ("health_status_abnormal", 0.0),
    ]
    .into_iter()
    .map(|(name, value)| (format!("kubelet_volume_stats_{name}"), value))
    .collect();
    let metrics = claim_metrics(port, "claim-e2e").await.unwrap();
    assert_eq!(metrics, expected_metrics);
    let stats_call = format!(
        "NodeGetVolumeStats vol-e2e {} {}",
        pod_volume.join("mount").display(),
        global.join("globalmount").display()
    );
    assert!(driver.calls().contains(&stats_call), "{:?}", driver.calls());

    // A restarted kubelet knows the volume from its dirs alone and tears it down from them.
    k.stop();
    k.start();
    wait_for(
        "the driver's figures after the restart",
        START,
        &k,
        &driver_figures,
    )
    .await;
    registered(&k, &driver, 2).await;

    // The first pod goes: its volume is unpublished, then unstaged, as nothing else holds it.
    cluster
        .kubectl(&["delete", "pod", "writer", "--wait=false"])
        .unwrap();
    // The driver records a call as it arrives: the kubelet's own removals come just after.
    eventually(
        "the volume unstaged and its dirs removed",
        START,
        &k,
        || {
            let done = volume_calls(&driver).len() == 4 && !pod_volume.exists() && !global.exists();
            done.then_some(())
        },
    )
    .await;
    let metrics = claim_metrics(port, "claim-e2e").await.unwrap();
    assert!(metrics.is_empty(), "{metrics:?}");

    // A second pod on the same claim reads what the first wrote.
    cluster.create(&claim_pod(
        "reader",
        node,
        "claim-e2e",
        "cat /data/greeting; sleep 3600",
    ));
    k.wait_running("reader", &["app"], START).await;
    let line = eventually("the reader's output", START, &k, || {
        first_log_line(&k, "reader")
    })
    .await;
    assert_eq!(line, "written-by-the-first-pod");
    cluster
        .kubectl(&["delete", "pod", "reader", "--wait=false"])
        .unwrap();
    eventually("the volume unstaged again", START, &k, || {
        (volume_calls(&driver).len() == 8 && !global.exists()).then_some(())
    })
    .await;
    let round = [
        "NodeStageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeUnstageVolume",
    ];
    assert_eq!(volume_calls(&driver), [round, round].concat());
    k.cleanup().await;
}

async fn an_attaching_driver_waits_for_the_attach_detach_controller(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-csi-attach";
    let driver_name = "csi-attach.kubelet-rs.test";
    // The node status every second, so volumesInUse shows without the default 10 s wait.
    let mut k = cluster
        .kubelet(node)
        .with_args(&["--node-status-update-frequency=1s"]);
    start_registered(&cluster, &mut k).await;
    let cfg = driver_config(&k, driver_name);
    let driver = TestCsiDriver::start(cfg).expect("the CSI driver starts");
    registered(&k, &driver, 1).await;
    cluster.create(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {driver_name}\nspec:\n  attachRequired: true\n---\n\
         apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pv-attach\nspec:\n  capacity:\n    storage: 1Gi\n  accessModes: [ReadWriteOnce]\n  csi:\n    driver: {driver_name}\n    volumeHandle: vol-attach\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: claim-attach\n  namespace: default\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  resources:\n    requests:\n      storage: 1Gi\n"
    ));
    bind_claim(&cluster, "pv-attach", "claim-attach");
    let unique = format!("kubernetes.io/csi/{driver_name}^vol-attach");
    let node_status = || {
        cluster
            .get("node", node, "default")
            .map(|n| n["status"].clone())
    };

    cluster.create(&claim_pod(
        "attached",
        node,
        "claim-attach",
        "echo on-an-attached-volume > /data/greeting; sleep 3600",
    ));
    // In use as soon as the pod needs it; mounted only once attached, saying why meanwhile.
    eventually("the volume in the node's volumesInUse", START, &k, || {
        (node_status()?["volumesInUse"] == json!([unique])).then_some(())
    })
    .await;
    let not_attached = "Unable to attach or mount volumes: volume \"data\": Volume not attached according to node status for volume \"pv-attach\"";
    eventually("a FailedMount event: not attached", START, &k, || {
        cluster
            .event_reasons("attached")?
            .contains(&("FailedMount".to_string(), not_attached.to_string()))
            .then_some(())
    })
    .await;
    assert!(volume_calls(&driver).is_empty());
    assert!(node_status().unwrap()["volumesAttached"].is_null());

    // The attach-detach controller's part: the attachment, then the node's volumesAttached.
    let attachment = format!(
        "csi-{}",
        sha256_hex(&format!("vol-attach{driver_name}{node}"))
    );
    cluster.create(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: VolumeAttachment\nmetadata:\n  name: {attachment}\nspec:\n  attacher: {driver_name}\n  nodeName: {node}\n  source:\n    persistentVolumeName: pv-attach\n"
    ));
    let attached = json!({"status": {"attached": true, "attachmentMetadata": {"devicePath": "/dev/test-1", "lun": "3"}}});
    let volumes_attached =
        json!({"status": {"volumesAttached": [{"name": unique, "devicePath": "/dev/test-1"}]}});
    for (target, patch) in [
        (["volumeattachment", attachment.as_str()], attached),
        (["node", node], volumes_attached),
    ] {
        let patch = patch.to_string();
        let mut args = vec!["patch"];
        args.extend(target);
        args.extend(["--subresource=status", "--type=merge", "-p", &patch]);
        cluster
            .kubectl(&args)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    }
    k.wait_running("attached", &["app"], START).await;
    let root = k.dir.join("root");
    let staging = root
        .join("plugins/kubernetes.io/csi")
        .join(driver_name)
        .join(sha256_hex("vol-attach"))
        .join("globalmount");
    let calls = driver.calls();
    assert!(
        calls.contains(&format!(
            "NodeStageVolume vol-attach {} devicePath=/dev/test-1 lun=3",
            staging.display()
        )),
        "{calls:?}"
    );
    let status = node_status().unwrap();
    assert_eq!(status["volumesInUse"], json!([unique]));
    assert_eq!(
        status["volumesAttached"],
        json!([{"name": unique, "devicePath": "/dev/test-1"}])
    );

    // The pod goes: once unpublished and unstaged, the volume is no longer in use; the
    // controller's volumesAttached is left to the controller.
    cluster
        .kubectl(&["delete", "pod", "attached", "--wait=false"])
        .unwrap();
    let status = eventually("the volume out of volumesInUse", START, &k, || {
        let status = node_status()?;
        status["volumesInUse"].is_null().then_some(status)
    })
    .await;
    assert_eq!(
        volume_calls(&driver),
        [
            "NodeStageVolume",
            "NodePublishVolume",
            "NodeUnpublishVolume",
            "NodeUnstageVolume"
        ]
    );
    assert_eq!(
        status["volumesAttached"],
        json!([{"name": unique, "devicePath": "/dev/test-1"}])
    );
    k.cleanup().await;
}

/// A pod on `node` running `script` with an inline volume of `driver` mounted at /data.
fn inline_pod(name: &str, node: &str, driver: &str, script: &str) -> String {
    with_data_volume(
        name,
        node,
        script,
        &format!(
            "csi:\n      driver: {driver}\n      fsType: ext4\n      readOnly: false\n      volumeAttributes:\n        size: 1Mi\n        color: blue\n      nodePublishSecretRef:\n        name: inline-secret\n"
        ),
    )
}

/// The message of the FailedMount event about pod `name`, once there is one.
async fn failed_mount(cluster: &Cluster, k: &Kubelet, name: &str) -> String {
    eventually(&format!("a FailedMount event for {name}"), START, k, || {
        let event = cluster.event(name, "FailedMount")?;
        event["message"].as_str().map(str::to_string)
    })
    .await
}

async fn an_inline_csi_volume_is_published_for_its_pod_alone(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-csi-inline";
    let persistent_only = "csi-persistent.kubelet-rs.test";
    let port = free_port();
    let mut k = cluster.kubelet(node).with_args(&[
        &format!("--read-only-port={port}"),
        "--volume-stats-agg-period=1s",
    ]);
    start_registered(&cluster, &mut k).await;
    cluster.create(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {DRIVER}\nspec:\n  attachRequired: false\n  podInfoOnMount: true\n  volumeLifecycleModes: [Ephemeral]\n---\n\
         apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {persistent_only}\nspec:\n  attachRequired: false\n  volumeLifecycleModes: [Persistent]\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: inline-secret\n  namespace: default\ndata:\n  token: czNjcmV0\n"
    ));

    // The driver is not registered yet: the pod waits, saying so as upstream does.
    cluster.create(&inline_pod(
        "inline",
        node,
        DRIVER,
        "echo written-inline > /data/greeting; sleep 3600",
    ));
    let message = failed_mount(&cluster, &k, "inline").await;
    assert_eq!(
        message,
        format!(
            "Unable to attach or mount volumes: volume \"data\": kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: driver name {DRIVER} not found in the list of registered CSI drivers"
        )
    );

    // A driver that stages persistent volumes: an inline one is still only published.
    let cfg = driver_config(&k, DRIVER);
    assert!(cfg.stage_unstage);
    let driver = TestCsiDriver::start(cfg.clone()).expect("the CSI driver starts");
    k.wait_running("inline", &["app"], START).await;
    let pod = cluster.get("pod", "inline", "default").unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let service_account = pod["spec"]["serviceAccountName"].as_str().unwrap_or("");
    let handle = format!("csi-{}", sha256_hex(&format!("{uid}data")));
    let written = eventually("the file in the driver's volume dir", START, &k, || {
        std::fs::read_to_string(cfg.data_dir.join(&handle).join("greeting")).ok()
    })
    .await;
    assert_eq!(written, "written-inline\n");
    let root = k.dir.join("root");
    let pod_volume = root.join(format!("pods/{uid}/volumes/kubernetes.io~csi/data"));
    let target = pod_volume.join("mount");
    assert_eq!(volume_calls(&driver), ["NodePublishVolume"]);
    let context: BTreeMap<String, String> = [
        ("size", "1Mi"),
        ("color", "blue"),
        ("csi.storage.k8s.io/pod.name", "inline"),
        ("csi.storage.k8s.io/pod.namespace", "default"),
        ("csi.storage.k8s.io/pod.uid", uid.as_str()),
        ("csi.storage.k8s.io/serviceAccount.name", service_account),
        ("csi.storage.k8s.io/ephemeral", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let expected = csi::NodePublishVolumeRequest {
        volume_id: handle.clone(),
        publish_context: BTreeMap::new(),
        staging_target_path: String::new(),
        target_path: target.display().to_string(),
        volume_capability: Some(csi::VolumeCapability {
            access_type: Some(csi::volume_capability::AccessType::Mount(
                csi::volume_capability::MountVolume {
                    fs_type: "ext4".into(),
                    mount_flags: Vec::new(),
                    volume_mount_group: String::new(),
                },
            )),
            access_mode: Some(csi::volume_capability::AccessMode {
                mode: csi::volume_capability::access_mode::Mode::SingleNodeWriter as i32,
            }),
        }),
        readonly: false,
        secrets: BTreeMap::from([("token".to_string(), "s3cret".to_string())]),
        volume_context: context,
    };
    assert_eq!(driver.publish_requests(), [expected]);
    let vol_data: Value =
        serde_json::from_slice(&std::fs::read(pod_volume.join("vol_data.json")).unwrap()).unwrap();
    assert_eq!(
        vol_data,
        json!({
            "specVolID": "data",
            "volumeHandle": handle,
            "driverName": DRIVER,
            "nodeName": node,
            "attachmentID": format!("csi-{}", sha256_hex(&format!("{handle}{DRIVER}{node}"))),
            "volumeLifecycleMode": "Ephemeral",
        })
    );

    // The driver's figures for a 1 GiB, 65536-inode volume holding its dir and one 15-byte
    // file; no pvcRef and no claim series, as the volume has no claim.
    let greeting = "written-inline\n".len() as u64;
    let expected_volume = json!({
        "name": "data",
        "capacityBytes": 1u64 << 30,
        "availableBytes": (1u64 << 30) - greeting,
        "usedBytes": greeting,
        "inodes": 1 << 16,
        "inodesFree": (1 << 16) - 2,
        "inodesUsed": 2,
    });
    wait_for(
        "the driver's figures in /stats/summary",
        START,
        &k,
        &|| async {
            let mut volume = summary_volume(port, "inline", "data").await?;
            volume.as_object_mut()?.remove("time")?;
            (volume == expected_volume).then_some(())
        },
    )
    .await;
    let (_, metrics) = http_get(port, "/metrics").await.unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("kubelet_volume_stats_"))
        .collect();
    assert!(series.is_empty(), "{series:?}");

    // A driver whose CSIDriver lists only Persistent is never asked for an inline volume.
    let refusing = TestCsiDriver::start(driver_config(&k, persistent_only))
        .expect("the second CSI driver starts");
    registered(&k, &refusing, 1).await;
    cluster.create(&inline_pod("refused", node, persistent_only, "sleep 3600"));
    let message = failed_mount(&cluster, &k, "refused").await;
    assert_eq!(
        message,
        format!(
            "Unable to attach or mount volumes: volume \"data\": volume mode \"Ephemeral\" not supported by driver {persistent_only} (only supports [\"Persistent\"])"
        )
    );
    assert!(volume_calls(&refusing).is_empty());
    assert!(refusing.publish_requests().is_empty());
    cluster
        .kubectl(&["delete", "pod", "refused", "--wait=false"])
        .unwrap();

    // A restarted kubelet finds the published volume from its dir and leaves it be.
    k.stop();
    k.start();
    registered(&k, &driver, 2).await;
    k.wait_running("inline", &["app"], START).await;

    // The pod goes: its volume is unpublished and its dir removed.
    cluster
        .kubectl(&["delete", "pod", "inline", "--wait=false"])
        .unwrap();
    eventually(
        "the volume unpublished and its dir removed",
        START,
        &k,
        || {
            let done = volume_calls(&driver).len() == 2 && !pod_volume.exists();
            done.then_some(())
        },
    )
    .await;
    assert_eq!(
        volume_calls(&driver),
        ["NodePublishVolume", "NodeUnpublishVolume"]
    );
    assert!(
        driver.calls().contains(&format!(
            "NodeUnpublishVolume {handle} {}",
            target.display()
        )),
        "{:?}",
        driver.calls()
    );
    assert!(!kubelet_volumes::is_mount_point(&target).unwrap());
    assert!(volume_calls(&refusing).is_empty());
    k.cleanup().await;
}

/// The user a TokenReview of `token` for `audience` (empty: the API server's own) reports, None
/// when the token is refused.
fn token_user(cluster: &Cluster, token: &str, audience: &str) -> Option<String> {
    let audiences = if audience.is_empty() {
        json!([])
    } else {
        json!([audience])
    };
    let review = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences},
    });
    let out = cluster
        .kubectl_stdin(
            &["create", "--validate=false", "-f", "-", "-o", "json"],
            Some(&review.to_string()),
        )
        .unwrap_or_else(|e| panic!("TokenReview: {e}"));
    let status = serde_json::from_str::<Value>(&out).unwrap()["status"].clone();
    if status["authenticated"] != json!(true) {
        return None;
    }
    status["user"]["username"].as_str().map(str::to_string)
}

/// The access mode and volume_mount_group a NodePublishVolume request asked for.
fn mode_and_mount_group(request: &csi::NodePublishVolumeRequest) -> (Mode, String) {
    use csi::volume_capability::AccessType;
    let capability = request.volume_capability.clone().unwrap();
    let mode = Mode::try_from(capability.access_mode.unwrap().mode).unwrap();
    let Some(AccessType::Mount(mount)) = capability.access_type else {
        panic!("a mount volume: {request:?}")
    };
    (mode, mount.volume_mount_group)
}

async fn csi_volumes_get_the_pods_fs_group_access_mode_and_tokens(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-csi-fsgroup";
    let delegating = "csi-group.kubelet-rs.test";
    let audience = "vault.kubelet-rs.test";
    // Pod syncs (and so republishes) every second rather than every minute.
    let mut k = cluster.kubelet(node).with_args(&["--sync-frequency=1s"]);
    start_registered(&cluster, &mut k).await;
    // DRIVER: the default fsGroupPolicy, tokens for an audience and for the API server,
    // published again at every sync. The delegating driver: policy File, inline volumes only.
    cluster.create(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {DRIVER}\nspec:\n  attachRequired: false\n  requiresRepublish: true\n  tokenRequests:\n  - audience: {audience}\n    expirationSeconds: 3600\n  - audience: \"\"\n---\n\
         apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {delegating}\nspec:\n  attachRequired: false\n  fsGroupPolicy: File\n  volumeLifecycleModes: [Ephemeral]\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: csi-tokens\n  namespace: default\n---\n\
         apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pv-fsgroup\nspec:\n  capacity:\n    storage: 1Gi\n  accessModes: [ReadWriteOnce]\n  csi:\n    driver: {DRIVER}\n    volumeHandle: vol-fsgroup\n    fsType: ext4\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: claim-fsgroup\n  namespace: default\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  resources:\n    requests:\n      storage: 1Gi\n"
    ));
    bind_claim(&cluster, "pv-fsgroup", "claim-fsgroup");
    let mut cfg = driver_config(&k, DRIVER);
    cfg.single_node_multi_writer = true;
    let driver = TestCsiDriver::start(cfg).expect("the CSI driver starts");
    let mut cfg = driver_config(&k, delegating);
    cfg.volume_mount_group = true;
    // It serves inline volumes alone, which are never staged.
    cfg.stage_unstage = false;
    let group_driver = TestCsiDriver::start(cfg).expect("the delegating CSI driver starts");
    registered(&k, &driver, 1).await;
    registered(&k, &group_driver, 1).await;

    let spec = bound_pod(
        "fsgroup",
        node,
        "echo \"$(stat -c %g /data) $(stat -c %g /inline)\"; sleep 3600",
        &format!(
            "  securityContext:\n    fsGroup: 2000\n  serviceAccountName: csi-tokens\n  automountServiceAccountToken: false\n  volumes:\n  - name: data\n    persistentVolumeClaim:\n      claimName: claim-fsgroup\n  - name: inline\n    csi:\n      driver: {delegating}\n      fsType: ext4\n"
        ),
    );
    cluster.create(&format!(
        "{spec}    volumeMounts:\n    - name: data\n      mountPath: /data\n    - name: inline\n      mountPath: /inline\n"
    ));
    k.wait_running("fsgroup", &["app"], START).await;
    // The claim's volume was given to the group; the delegating driver's was left alone.
    let groups = eventually("the pod's output", START, &k, || {
        first_log_line(&k, "fsgroup")
    })
    .await;
    assert_eq!(groups, "2000 0");

    let publishes = eventually("NodePublishVolume asked again", START, &k, || {
        let publishes = driver.publish_requests();
        (publishes.len() >= 2).then_some(publishes)
    })
    .await;
    let published = publishes.last().unwrap().clone();
    assert_eq!(published.target_path, publishes[0].target_path);
    assert_eq!(
        mode_and_mount_group(&published),
        (Mode::SingleNodeMultiWriter, String::new())
    );
    let tokens: Value =
        serde_json::from_str(&published.volume_context["csi.storage.k8s.io/serviceAccount.tokens"])
            .unwrap();
    let audiences: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    assert_eq!(audiences, ["", audience]);
    for aud in ["", audience] {
        let token = tokens[aud]["token"].as_str().unwrap();
        let expiry = tokens[aud]["expirationTimestamp"].as_str().unwrap();
        assert!(
            expiry.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "{aud:?}: {expiry}"
        );
        assert_eq!(
            token_user(&cluster, token, aud).as_deref(),
            Some("system:serviceaccount:default:csi-tokens"),
            "the token for {aud:?}"
        );
    }
    // A token is for its audience alone.
    assert_eq!(
        token_user(&cluster, tokens[audience]["token"].as_str().unwrap(), ""),
        None
    );

    let [inline] = group_driver.publish_requests().try_into().unwrap();
    assert_eq!(
        mode_and_mount_group(&inline),
        (Mode::SingleNodeWriter, "2000".to_string())
    );
    assert!(
        !inline
            .volume_context
            .contains_key("csi.storage.k8s.io/serviceAccount.tokens")
    );
    cluster
        .kubectl(&["delete", "pod", "fsgroup", "--wait=false"])
        .unwrap();
    eventually("both volumes unpublished", START, &k, || {
        let unpublished =
            |d: &TestCsiDriver| volume_calls(d).contains(&"NodeUnpublishVolume".to_string());
        (unpublished(&driver) && unpublished(&group_driver)).then_some(())
    })
    .await;
    k.cleanup().await;
}

/// A pod on `node` running `script` with the claim as a raw block device at /dev/xvda.
fn block_pod(name: &str, node: &str, claim: &str, script: &str) -> String {
    let spec = bound_pod(
        name,
        node,
        script,
        &format!(
            "  volumes:\n  - name: data\n    persistentVolumeClaim:\n      claimName: {claim}\n"
        ),
    );
    format!("{spec}    volumeDevices:\n    - name: data\n      devicePath: /dev/xvda\n")
}

/// The mount points at or below `dir`, from this process's mount table.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap();
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|point| point == &prefix || point.starts_with(&format!("{prefix}/")))
        .collect()
}

/// The loop devices attached to `file`, as losetup lists them (it must be installed).
fn loop_devices_of(file: &std::path::Path) -> String {
    let out = std::process::Command::new("losetup")
        .arg("-j")
        .arg(file)
        .output()
        .expect("losetup runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

async fn a_block_claim_is_mapped_into_containers_and_torn_down(backend: Backend) {
    use kubelet_plugin_apis::csi::v1::volume_capability::{AccessType, BlockVolume};
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-csi-block";
    let mut k = cluster.kubelet(node);
    start_registered(&cluster, &mut k).await;
    let cfg = driver_config(&k, DRIVER);
    let driver = TestCsiDriver::start(cfg.clone()).expect("the CSI driver starts");
    registered(&k, &driver, 1).await;
    create_claim_in_mode(&cluster, "pv-block", "claim-block", "vol-block", "Block");
    bind_claim(&cluster, "pv-block", "claim-block");
    let root = k.dir.join("root");
    let devices = root.join("plugins/kubernetes.io/csi/volumeDevices");
    let staging = devices.join("staging/pv-block");
    let backing = cfg.data_dir.join("vol-block.img");

    // A block claim in volumeMounts is refused before any driver call, in upstream's words.
    cluster.create(&claim_pod("misused", node, "claim-block", "sleep 3600"));
    let message = failed_mount(&cluster, &k, "misused").await;
    assert_eq!(
        message,
        "Unable to attach or mount volumes: volume \"data\": volume data has volumeMode Block, but is specified in volumeMounts"
    );
    assert!(volume_calls(&driver).is_empty());
    cluster
        .kubectl(&["delete", "pod", "misused", "--wait=false"])
        .unwrap();

    let bytes = "written-to-the-device";
    cluster.create(&block_pod(
        "block-writer",
        node,
        "claim-block",
        &format!("printf {bytes} | dd of=/dev/xvda conv=fsync && sleep 3600"),
    ));
    k.wait_running("block-writer", &["app"], START).await;
    let written = eventually("the bytes in the volume's backing file", START, &k, || {
        let data = std::fs::read(&backing).ok()?;
        data.starts_with(bytes.as_bytes()).then_some(())
    });
    written.await;
    let uid = cluster.get("pod", "block-writer", "default").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let publish = devices.join("publish/pv-block").join(&uid);
    let link = root.join(format!(
        "pods/{uid}/volumeDevices/kubernetes.io~csi/pv-block"
    ));
    assert_eq!(std::fs::read_link(&link).unwrap(), publish);
    assert!(kubelet_volumes::is_mount_point(&publish).unwrap());
    let vol_data: Value = serde_json::from_slice(
        &std::fs::read(devices.join("pv-block/data/vol_data.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        vol_data,
        json!({
            "specVolID": "pv-block",
            "volumeHandle": "vol-block",
            "driverName": DRIVER,
            "nodeName": node,
            "attachmentID": format!("csi-{}", sha256_hex(&format!("vol-block{DRIVER}{node}"))),
        })
    );
    let calls = driver.calls();
    for call in [
        format!("NodeStageVolume vol-block {}", staging.display()),
        format!("NodePublishVolume vol-block {}", publish.display()),
    ] {
        assert!(calls.contains(&call), "{call} not in {calls:?}");
    }
    let publishes = driver.publish_requests();
    assert_eq!(publishes.len(), 1);
    let capability = publishes[0].volume_capability.clone().unwrap();
    assert_eq!(
        capability.access_type,
        Some(AccessType::Block(BlockVolume {}))
    );
    assert_eq!(
        publishes[0].staging_target_path,
        staging.display().to_string()
    );
    assert!(!loop_devices_of(&backing).is_empty());

    // A restarted kubelet finds the mapped volume from its dirs, asks the driver nothing, and
    // tears it down from them.
    k.stop();
    k.start();
    registered(&k, &driver, 2).await;
    k.wait_running("block-writer", &["app"], START).await;
    assert_eq!(
        volume_calls(&driver),
        ["NodeStageVolume", "NodePublishVolume"]
    );

    // The writer goes: unmapped, unpublished, unstaged; its loop device detached.
    cluster
        .kubectl(&["delete", "pod", "block-writer", "--wait=false"])
        .unwrap();
    eventually(
        "the block volume unstaged and its dirs removed",
        START,
        &k,
        || {
            let done = volume_calls(&driver).len() == 4
                && !link.exists()
                && !devices.join("pv-block").exists();
            done.then_some(())
        },
    )
    .await;
    assert_eq!(loop_devices_of(&backing), "");

    // A second pod on the same claim reads the bytes back from its device.
    cluster.create(&block_pod(
        "block-reader",
        node,
        "claim-block",
        &format!(
            "dd if=/dev/xvda bs={} count=1 2>/dev/null; echo; sleep 3600",
            bytes.len()
        ),
    ));
    k.wait_running("block-reader", &["app"], START).await;
    let line = eventually("the reader's output", START, &k, || {
        first_log_line(&k, "block-reader")
    })
    .await;
    assert_eq!(line, bytes);
    cluster
        .kubectl(&["delete", "pod", "block-reader", "--wait=false"])
        .unwrap();
    eventually("the block volume unstaged again", START, &k, || {
        let done = volume_calls(&driver).len() == 8 && !devices.join("pv-block").exists();
        done.then_some(())
    })
    .await;
    let round = [
        "NodeStageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeUnstageVolume",
    ];
    assert_eq!(volume_calls(&driver), [round, round].concat());
    let calls = driver.calls();
    assert!(
        calls.contains(&format!(
            "NodeUnstageVolume vol-block {}",
            staging.display()
        )),
        "{calls:?}"
    );
    assert_eq!(loop_devices_of(&backing), "");
    // The pod's own dir (its token volume's tmpfs) goes just after its CSI volumes.
    eventually("no mount left under the root dir", START, &k, || {
        mounts_under(&root).is_empty().then_some(())
    })
    .await;
    for dir in ["staging", "publish"] {
        let left: Vec<_> = std::fs::read_dir(devices.join(dir))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
    k.cleanup().await;
}

async fn a_kubelet_killed_mid_publish_leaves_nothing_behind(backend: Backend) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-csi-kill";
    let mut k = cluster.kubelet(node);
    start_registered(&cluster, &mut k).await;
    // Every publish mounts, then holds its answer long enough for the kill.
    let mut cfg = driver_config(&k, DRIVER);
    cfg.publish_delay = Duration::from_secs(10);
    let driver = TestCsiDriver::start(cfg).expect("the CSI driver starts");
    registered(&k, &driver, 1).await;
    create_claim(&cluster, "pv-kill", "claim-kill", "vol-kill");
    bind_claim(&cluster, "pv-kill", "claim-kill");
    let root = k.dir.join("root");
    cluster.create(&claim_pod(
        "killed",
        node,
        "claim-kill",
        "echo survived > /data/greeting; sleep 3600",
    ));
    let uid = cluster.get("pod", "killed", "default").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let target = root.join(format!(
        "pods/{uid}/volumes/kubernetes.io~csi/pv-kill/mount"
    ));
    // The driver has mounted the target and not answered yet.
    eventually("the publish in flight, mounted", START, &k, || {
        let mounted = kubelet_volumes::is_mount_point(&target).unwrap();
        mounted.then_some(())
    })
    .await;
    assert_eq!(
        volume_calls(&driver),
        ["NodeStageVolume", "NodePublishVolume"]
    );
    k.kill();

    // A new kubelet on the same root dir finds the volume published and runs the pod on it.
    k.start();
    registered(&k, &driver, 2).await;
    k.wait_running("killed", &["app"], START).await;
    cluster
        .kubectl(&["delete", "pod", "killed", "--wait=false"])
        .unwrap();
    eventually("the volume unpublished and unstaged", START, &k, || {
        let calls = volume_calls(&driver);
        let done = calls.contains(&"NodeUnstageVolume".to_string()) && !target.exists();
        done.then_some(())
    })
    .await;
    let calls = driver.calls();
    assert!(
        calls.contains(&format!(
            "NodeUnpublishVolume vol-kill {}",
            target.display()
        )),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("NodeUnstageVolume vol-kill ")),
        "{calls:?}"
    );
    // The pod's own dir (its token volume's tmpfs) goes just after its CSI volumes.
    eventually("no mount left under the root dir", START, &k, || {
        mounts_under(&root).is_empty().then_some(())
    })
    .await;
    k.cleanup().await;
}

async fn a_kubelet_killed_mid_stage_whose_pod_goes_meanwhile_leaves_nothing_behind(
    backend: Backend,
) {
    let _serial = support::serial().await;
    let cluster = Cluster::start(backend);
    let node = "e2e-csi-kill-stage";
    let mut k = cluster.kubelet(node);
    start_registered(&cluster, &mut k).await;
    // Every stage mounts, then holds its answer long enough for the kill.
    let mut cfg = driver_config(&k, DRIVER);
    cfg.stage_delay = Duration::from_secs(10);
    let driver = TestCsiDriver::start(cfg).expect("the CSI driver starts");
    registered(&k, &driver, 1).await;
    create_claim(
        &cluster,
        "pv-kill-stage",
        "claim-kill-stage",
        "vol-kill-stage",
    );
    bind_claim(&cluster, "pv-kill-stage", "claim-kill-stage");
    let root = k.dir.join("root");
    cluster.create(&claim_pod(
        "stage-killed",
        node,
        "claim-kill-stage",
        "sleep 3600",
    ));
    let staging = root.join(format!(
        "plugins/kubernetes.io/csi/{DRIVER}/{}/globalmount",
        sha256_hex("vol-kill-stage")
    ));
    eventually("the stage in flight, mounted", START, &k, || {
        kubelet_volumes::is_mount_point(&staging)
            .unwrap_or(false)
            .then_some(())
    })
    .await;
    assert_eq!(volume_calls(&driver), ["NodeStageVolume"]);
    k.kill();

    // The pod goes while no kubelet runs; the next one still unstages its volume.
    cluster
        .kubectl(&[
            "delete",
            "pod",
            "stage-killed",
            "--grace-period=0",
            "--force",
        ])
        .unwrap();
    k.start();
    registered(&k, &driver, 2).await;
    eventually("the volume unstaged", START, &k, || {
        let calls = volume_calls(&driver);
        calls
            .contains(&"NodeUnstageVolume".to_string())
            .then_some(())
    })
    .await;
    assert_eq!(
        volume_calls(&driver),
        ["NodeStageVolume", "NodeUnstageVolume"]
    );
    eventually("no mount left under the root dir", START, &k, || {
        mounts_under(&root).is_empty().then_some(())
    })
    .await;
    k.cleanup().await;
}
