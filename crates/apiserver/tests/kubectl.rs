//! The real kubectl against the test API server: its requests and our answers must be the
//! real wire format, or kubectl fails.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use kubelet_test_apiserver::TestApiServer;
use serde_json::{Value, json};

struct Cluster {
    server: TestApiServer,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let server = TestApiServer::start();
        let dir = tempfile::tempdir().unwrap();
        server.kubeconfig(&dir.path().join("kubeconfig")).unwrap();
        Cluster { server, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Runs kubectl and returns its stdout, failing the test with its stderr when it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn create(&self, manifest: &str) {
        let path = self.dir.path().join("manifest.yaml");
        std::fs::write(&path, manifest).unwrap();
        self.ok(&["create", "-f", path.to_str().unwrap(), "--validate=false"]);
    }

    fn pod_json(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", "pod", name, "-o", "json"])).unwrap()
    }
}

fn pod_manifest(name: &str, node: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: \"{app}\"\n\
         spec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: busybox:1.36\n"
    )
}

#[test]
fn create_get_and_select_pods() {
    let c = Cluster::start();
    c.create(&pod_manifest("a", "n1", "x"));
    c.create(&pod_manifest("b", "n2", "y"));

    let names = c.ok(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(names, "a b");
    let on_n1 = c.ok(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=n1",
        "-o",
        "name",
    ]);
    assert_eq!(on_n1.trim(), "pod/a");
    let not_n1 = c.ok(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName!=n1",
        "-o",
        "name",
    ]);
    assert_eq!(not_n1.trim(), "pod/b");
    let app_x = c.ok(&["get", "pods", "-l", "app=x", "-o", "name"]);
    assert_eq!(app_x.trim(), "pod/a");
    let all_ns = c.ok(&["get", "pods", "-A", "-o", "name"]);
    assert_eq!(all_ns.lines().count(), 2);

    let pod = c.pod_json("a");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert!(!pod["metadata"]["uid"].as_str().unwrap().is_empty());

    // The default printer works without server-side tables.
    let table = c.ok(&["get", "pods"]);
    assert!(table.starts_with("NAME"), "{table}");

    let again = c.run(&[
        "create",
        "-f",
        c.dir.path().join("manifest.yaml").to_str().unwrap(),
        "--validate=false",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"));
}

#[test]
fn graceful_delete_marks_a_bound_pod_and_force_delete_removes_it() {
    let c = Cluster::start();
    c.create(&pod_manifest("web", "n1", "x"));

    c.ok(&["delete", "pod", "web", "--wait=false"]);
    let pod = c.pod_json("web");
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);

    c.ok(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    let gone = c.run(&["get", "pod", "web"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
}

#[test]
fn unbound_pod_is_deleted_at_once() {
    let c = Cluster::start();
    c.create("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n");
    c.ok(&["delete", "pod", "p", "--wait=false"]);
    assert!(c.ok(&["get", "pods", "-o", "name"]).is_empty());
}

#[test]
fn patch_merge_and_strategic() {
    let c = Cluster::start();
    c.create(&pod_manifest("web", "n1", "x"));
    c.ok(&[
        "patch",
        "pod",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ]);
    c.ok(&[
        "patch",
        "pod",
        "web",
        "-p",
        r#"{"metadata":{"annotations":{"a":"b"}}}"#,
    ]);
    let pod = c.pod_json("web");
    assert_eq!(
        pod["metadata"]["labels"],
        json!({"app": "x", "tier": "front"})
    );
    assert_eq!(pod["metadata"]["annotations"], json!({"a": "b"}));
}

#[test]
fn nodes_leases_and_other_kinds() {
    let c = Cluster::start();
    let store = c.server.store();
    store
        .put(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
    store
        .put(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}))
        .unwrap();
    assert_eq!(c.ok(&["get", "nodes", "-o", "name"]).trim(), "node/n1");
    assert_eq!(
        c.ok(&[
            "get",
            "no",
            "n1",
            "-o",
            "jsonpath={.status.conditions[0].type}"
        ]),
        "Ready"
    );
    let lease = c.ok(&[
        "get",
        "leases",
        "-n",
        "kube-node-lease",
        "-o",
        "jsonpath={.items[0].spec.holderIdentity}",
    ]);
    assert_eq!(lease, "n1");
    // Imperative `kubectl create configmap` sends protobuf, which this server refuses (415).
    let refused = c.run(&["create", "configmap", "cfg", "--from-literal=k=v"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown format"));
    c.create("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k: v\n");
    assert_eq!(c.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.k}"]), "v");
    c.create("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  k: dg==\n");
    assert_eq!(
        c.ok(&["get", "secret", "s", "-o", "jsonpath={.type} {.data.k}"]),
        "Opaque dg=="
    );
    let namespaces = c.ok(&["get", "ns", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
}

#[test]
fn watch_streams_changes_until_killed() {
    let c = Cluster::start();
    c.create(&pod_manifest("first", "n1", "x"));
    let mut child = c
        .command(&["get", "pods", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "pod/first");
    c.create(&pod_manifest("second", "n1", "x"));
    assert_eq!(lines.next().unwrap().unwrap(), "pod/second");
    child.kill().unwrap();
    child.wait().unwrap();
}
