//! The storage kinds of the test API server (PersistentVolume, PersistentVolumeClaim and
//! storage.k8s.io/v1 StorageClass, CSIDriver, CSINode, VolumeAttachment) against the real
//! kube-apiserver: the same kubectl session runs against both, and what the kubelet and the test
//! harness rely on (discovery, scope, defaults, protection finalizers, the status subresource, a
//! claim bound by hand) must come out the same.

use kubelet_test_apiserver::TestApiServer;
use kubelet_testkit::apiserver::RealApiServer;
use kubelet_testkit::kubectl::Kubectl;
use serde_json::{Value, json};

const OBJECTS: &str = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: csi-test
provisioner: csi.test.kubelet-rs.io
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: csi.test.kubelet-rs.io
spec: {}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-1
spec:
  capacity:
    storage: 1Gi
  accessModes: [ReadWriteOnce]
  storageClassName: csi-test
  csi:
    driver: csi.test.kubelet-rs.io
    volumeHandle: vol-1
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: claim-1
  namespace: default
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: csi-test
  resources:
    requests:
      storage: 1Gi
---
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata:
  name: node-1
spec:
  drivers:
  - name: csi.test.kubelet-rs.io
    nodeID: node-1-id
    topologyKeys: [topology.test/zone]
    allocatable:
      count: 7
---
apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata:
  name: csi-attach-1
spec:
  attacher: csi.test.kubelet-rs.io
  nodeName: node-1
  source:
    persistentVolumeName: pv-1
"#;

fn get(kubectl: &Kubectl, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&kubectl.run(&all).unwrap()).unwrap()
}

fn ok(kubectl: &Kubectl, args: &[&str]) {
    if let Err(e) = kubectl.run(args) {
        panic!("kubectl {args:?}: {e}");
    }
}

/// The session: what each step shows, as one document to compare.
fn session(kubectl: &Kubectl) -> Value {
    let mut seen = json!({});
    let resources = kubectl
        .run(&[
            "api-resources",
            "--api-group=storage.k8s.io",
            "--no-headers",
        ])
        .unwrap();
    let mut storage: Vec<String> = resources
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| {
            [
                "csidrivers",
                "csinodes",
                "storageclasses",
                "volumeattachments",
            ]
            .iter()
            .any(|n| l.starts_with(&format!("{n} ")))
        })
        .collect();
    storage.sort();
    seen["storage.k8s.io"] = json!(storage);
    let core = kubectl
        .run(&["api-resources", "--api-group=", "--no-headers"])
        .unwrap();
    seen["core"] = json!(
        core.lines()
            .filter(|l| l.starts_with("persistentvolume"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    );

    kubectl
        .run_stdin(&["create", "--validate=false", "-f", "-"], Some(OBJECTS))
        .unwrap();
    let class = get(kubectl, &["storageclass", "csi-test"]);
    seen["storageclass"] = json!([class["reclaimPolicy"], class["volumeBindingMode"]]);
    let driver = get(kubectl, &["csidriver", "csi.test.kubelet-rs.io"]);
    let spec = &driver["spec"];
    seen["csidriver"] = json!([
        spec["attachRequired"],
        spec["podInfoOnMount"],
        spec["requiresRepublish"],
        spec["storageCapacity"],
        spec["fsGroupPolicy"],
        spec["volumeLifecycleModes"],
        spec["seLinuxMount"],
    ]);
    let pv = get(kubectl, &["pv", "pv-1"]);
    seen["pv"] = json!([
        pv["metadata"]["namespace"],
        pv["metadata"]["finalizers"],
        pv["spec"]["persistentVolumeReclaimPolicy"],
        pv["spec"]["volumeMode"],
        pv["status"]["phase"],
    ]);
    let pvc = get(kubectl, &["pvc", "claim-1", "-n", "default"]);
    seen["pvc"] = json!([
        pvc["metadata"]["finalizers"],
        pvc["spec"]["volumeMode"],
        pvc["status"]["phase"],
    ]);
    let csinode = get(kubectl, &["csinode", "node-1"]);
    seen["csinode"] = csinode["spec"].clone();

    // The harness's binding, as the PV controller would do it.
    let claim_ref = json!({"spec": {"claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "claim-1", "uid": pvc["metadata"]["uid"], "apiVersion": "v1"}}});
    ok(
        kubectl,
        &[
            "patch",
            "pv",
            "pv-1",
            "--type=merge",
            "-p",
            &claim_ref.to_string(),
        ],
    );
    ok(
        kubectl,
        &[
            "patch",
            "pv",
            "pv-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Bound"}}"#,
        ],
    );
    ok(
        kubectl,
        &[
            "patch",
            "pvc",
            "claim-1",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"spec":{"volumeName":"pv-1"}}"#,
        ],
    );
    // A status change through the main resource is dropped; the subresource takes it.
    ok(
        kubectl,
        &[
            "patch",
            "pvc",
            "claim-1",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Lost"}}"#,
        ],
    );
    seen["pvc status through the object"] =
        get(kubectl, &["pvc", "claim-1", "-n", "default"])["status"]["phase"].clone();
    ok(
        kubectl,
        &[
            "patch",
            "pvc",
            "claim-1",
            "-n",
            "default",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Bound"}}"#,
        ],
    );
    let pvc = get(kubectl, &["pvc", "claim-1", "-n", "default"]);
    let pv = get(kubectl, &["pv", "pv-1"]);
    seen["bound"] = json!([
        pvc["spec"]["volumeName"],
        pvc["status"]["phase"],
        pv["spec"]["claimRef"]["name"],
        pv["status"]["phase"],
    ]);

    // The attach-detach controller's part, for attaching drivers.
    ok(
        kubectl,
        &[
            "patch",
            "volumeattachment",
            "csi-attach-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"attached":true}}"#,
        ],
    );
    seen["attached"] = get(kubectl, &["volumeattachment", "csi-attach-1"])["status"].clone();

    // A claim in use stays until its protection finalizer goes.
    ok(
        kubectl,
        &["delete", "pvc", "claim-1", "-n", "default", "--wait=false"],
    );
    let deleting = get(kubectl, &["pvc", "claim-1", "-n", "default"]);
    seen["deleted pvc stays"] = json!(deleting["metadata"]["deletionTimestamp"].is_string());
    ok(
        kubectl,
        &[
            "patch",
            "pvc",
            "claim-1",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    seen["pvc gone"] = json!(
        kubectl
            .run(&["get", "pvc", "claim-1", "-n", "default"])
            .is_err()
    );
    seen
}

#[test]
fn storage_kinds_behave_as_on_the_real_apiserver() {
    let test_server = TestApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    test_server.kubeconfig(&kubeconfig).unwrap();
    let ours = session(&Kubectl::new(&kubeconfig));

    let real = RealApiServer::start();
    let theirs = session(real.kubectl());
    assert_eq!(
        ours, theirs,
        "test API server (left) vs kube-apiserver (right)"
    );

    // And both are what the kubelet expects.
    assert_eq!(ours["csinode"]["drivers"][0]["allocatable"]["count"], 7);
    assert_eq!(ours["bound"], json!(["pv-1", "Bound", "claim-1", "Bound"]));
    assert_eq!(ours["attached"]["attached"], true);
    assert_eq!(ours["pvc status through the object"], "Pending");
}
