//! Registration, node status and the Lease against the test API server, through a client
//! built from the kubeconfig the server writes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, NodeCondition, Taint};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kubelet_nodestatus::{
    ApiRateLimit, LeaseConfig, LeaseLoop, MachineFacts, NodeInfoSource, NodeStatusConfig,
    NodeStatusLoop, PressureInputs, client_from_kubeconfig, record_starting_event, register_node,
};
use kubelet_test_apiserver::TestApiServer;
use kubelet_test_apiserver::resources;
use serde_json::{Value, json};
use tokio::sync::watch;

const NODE: &str = "node-a";

struct Cluster {
    server: TestApiServer,
    client: kube::Client,
    dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let server = TestApiServer::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    server.kubeconfig(&kubeconfig).expect("kubeconfig written");
    let client = client_from_kubeconfig(&kubeconfig, ApiRateLimit::default())
        .await
        .expect("a client from the kubeconfig");
    Cluster {
        server,
        client,
        dir,
    }
}

fn info() -> NodeInfoSource {
    NodeInfoSource {
        node_name: NODE.to_string(),
        hostname: NODE.to_string(),
        node_ips: vec!["10.1.2.3".parse().expect("an ip")],
        labels: BTreeMap::from([("node-role.example.com/edge".to_string(), String::new())]),
        taints: vec![Taint {
            key: "dedicated".to_string(),
            value: Some("edge".to_string()),
            effect: "NoSchedule".to_string(),
            time_added: None,
        }],
        kubelet_port: 10250,
        runtime_version: "containerd://1.6.20".to_string(),
        max_pods: 110,
        controller_attach_detach: true,
        ..NodeInfoSource::default()
    }
}

fn machine() -> MachineFacts {
    MachineFacts::read(Path::new("/")).expect("this machine's facts")
}

fn condition<'a>(node: &'a Node, kind: &str) -> &'a NodeCondition {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == kind))
        .unwrap_or_else(|| panic!("condition {kind}"))
}

fn stored_lease(server: &TestApiServer) -> Option<Value> {
    let leases = resources::find("coordination.k8s.io", "v1", "leases").expect("leases");
    server.store().get(leases, "kube-node-lease", NODE).ok()
}

fn renew_time(lease: &Value) -> Timestamp {
    lease["spec"]["renewTime"]
        .as_str()
        .expect("renewTime")
        .parse()
        .expect("an RFC 3339 time")
}

#[tokio::test]
async fn registration_creates_the_node_with_labels_annotation_taints_and_status() {
    let cluster = cluster().await;
    let machine = machine();
    register_node(
        &cluster.client,
        &info(),
        &machine,
        &PressureInputs::default(),
    )
    .await
    .expect("registered");
    let node = Api::<Node>::all(cluster.client.clone())
        .get(NODE)
        .await
        .expect("the node exists");
    let labels = node.metadata.labels.clone().expect("labels");
    for (key, value) in [
        ("kubernetes.io/hostname", NODE),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", kubelet_nodestatus::go_arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", kubelet_nodestatus::go_arch()),
        ("node-role.example.com/edge", ""),
    ] {
        assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
    }
    let annotations = node.metadata.annotations.clone().expect("annotations");
    assert_eq!(
        annotations["volumes.kubernetes.io/controller-managed-attach-detach"],
        "true"
    );
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone());
    assert_eq!(taints, Some(info().taints));

    let status = node.status.clone().expect("status");
    let capacity = status.capacity.expect("capacity");
    assert_eq!(capacity["cpu"].0, machine.num_cpus.to_string());
    assert_ne!(capacity["memory"].0, "0");
    assert_ne!(capacity["ephemeral-storage"].0, "0");
    assert_eq!(capacity["pods"].0, "110");
    let allocatable = status.allocatable.expect("allocatable");
    assert_ne!(allocatable["memory"], capacity["memory"], "100Mi held back");
    let node_info = status.node_info.expect("nodeInfo");
    assert_eq!(node_info.boot_id, machine.boot_id);
    assert_eq!(node_info.machine_id, machine.machine_id);
    assert_eq!(node_info.kernel_version, machine.kernel_version);
    assert_eq!(node_info.kubelet_version, "v1.32.0");
    assert_eq!(node_info.container_runtime_version, "containerd://1.6.20");
    let ready = condition(&node, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("True", Some("KubeletReady"))
    );
    let memory = condition(&node, "MemoryPressure");
    assert_eq!(memory.reason.as_deref(), Some("KubeletHasSufficientMemory"));
}

#[tokio::test]
async fn registration_adopts_an_existing_node_and_reconciles_default_labels() {
    let cluster = cluster().await;
    let existing = cluster
        .server
        .store()
        .put(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {
                    "kubernetes.io/hostname": "stale-name",
                    "topology.kubernetes.io/zone": "gone",
                    "team": "blue",
                },
            },
        }))
        .expect("a node put in place");
    let node = register_node(
        &cluster.client,
        &info(),
        &machine(),
        &PressureInputs::default(),
    )
    .await
    .expect("adopted");
    assert_eq!(
        node.metadata.uid.as_deref(),
        existing["metadata"]["uid"].as_str(),
        "the same object"
    );
    let labels = node.metadata.labels.expect("labels");
    assert_eq!(labels["kubernetes.io/hostname"], NODE);
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert!(!labels.contains_key("topology.kubernetes.io/zone"));
    assert_eq!(labels["team"], "blue", "labels of others stay");
    let annotations = node.metadata.annotations.expect("annotations");
    assert_eq!(
        annotations["volumes.kubernetes.io/controller-managed-attach-detach"],
        "true"
    );
}

#[tokio::test]
async fn status_is_patched_on_change_and_when_the_report_is_due() {
    let cluster = cluster().await;
    let machine = machine();
    register_node(
        &cluster.client,
        &info(),
        &machine,
        &PressureInputs::default(),
    )
    .await
    .expect("registered");
    let (inputs, receiver) = watch::channel(PressureInputs::default());
    let config = NodeStatusConfig {
        report_frequency: Duration::from_secs(2),
        ..NodeStatusConfig::default()
    };
    let mut status_loop =
        NodeStatusLoop::new(cluster.client.clone(), info(), machine, receiver, config);
    assert!(
        status_loop.sync().await.expect("first round"),
        "the first round posts"
    );
    let version = cluster.server.store().resource_version();
    assert!(
        !status_loop.sync().await.expect("second round"),
        "nothing changed"
    );
    assert_eq!(
        cluster.server.store().resource_version(),
        version,
        "no write"
    );

    inputs.send_replace(PressureInputs {
        memory_pressure: true,
        ..PressureInputs::default()
    });
    assert!(
        status_loop.sync().await.expect("third round"),
        "pressure is news"
    );
    let node = Api::<Node>::all(cluster.client.clone())
        .get(NODE)
        .await
        .expect("the node");
    let memory = condition(&node, "MemoryPressure");
    assert_eq!(
        (memory.status.as_str(), memory.reason.as_deref()),
        ("True", Some("KubeletHasInsufficientMemory"))
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        status_loop.sync().await.expect("fourth round"),
        "the report is due"
    );

    record_starting_event(&cluster.client, NODE).await;
    let reasons = event_reasons(&cluster.client).await;
    for reason in [
        "NodeHasSufficientMemory",
        "NodeHasNoDiskPressure",
        "NodeHasSufficientPID",
        "NodeHasInsufficientMemory",
        "Starting",
    ] {
        assert_eq!(
            reasons.iter().filter(|r| *r == reason).count(),
            1,
            "{reason} once in {reasons:?}"
        );
    }
}

async fn event_reasons(client: &kube::Client) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(NODE))
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test]
async fn the_lease_is_created_owned_by_the_node_and_renewed() {
    let cluster = cluster().await;
    let node = register_node(
        &cluster.client,
        &info(),
        &machine(),
        &PressureInputs::default(),
    )
    .await
    .expect("registered");
    let mut lease_loop = LeaseLoop::new(
        cluster.client.clone(),
        NODE.to_string(),
        LeaseConfig::default(),
    );
    let first = lease_loop.renew().await.expect("created");
    let spec = first.spec.clone().expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(NODE));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owners = first.metadata.owner_references.clone().expect("owners");
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (
            owners[0].api_version.as_str(),
            owners[0].kind.as_str(),
            owners[0].name.as_str()
        ),
        ("v1", "Node", NODE)
    );
    assert_eq!(Some(&owners[0].uid), node.metadata.uid.as_ref());

    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = lease_loop.renew().await.expect("renewed");
    let renew = |lease: &Lease| lease.spec.as_ref().and_then(|s| s.renew_time.clone());
    assert!(renew(&second) > renew(&first), "renewTime moves on");
    let stored = stored_lease(&cluster.server).expect("the lease is stored");
    assert_eq!(stored["metadata"]["ownerReferences"][0]["kind"], "Node");
}

#[tokio::test]
async fn an_outage_is_survived_and_the_lease_and_status_catch_up() {
    let cluster = cluster().await;
    let machine = machine();
    register_node(
        &cluster.client,
        &info(),
        &machine,
        &PressureInputs::default(),
    )
    .await
    .expect("registered");
    let lease_config = LeaseConfig {
        renew_interval: Duration::from_millis(200),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        ..LeaseConfig::default()
    };
    let status_config = NodeStatusConfig {
        update_frequency: Duration::from_millis(200),
        retry_initial: Duration::from_millis(50),
        ..NodeStatusConfig::default()
    };
    let (inputs, receiver) = watch::channel(PressureInputs::default());
    let lease_task =
        tokio::spawn(LeaseLoop::new(cluster.client.clone(), NODE.to_string(), lease_config).run());
    let status_task = tokio::spawn(
        NodeStatusLoop::new(
            cluster.client.clone(),
            info(),
            machine,
            receiver,
            status_config,
        )
        .run(),
    );
    wait_for(|| stored_lease(&cluster.server).is_some()).await;

    cluster.server.stop_listener();
    inputs.send_replace(PressureInputs {
        disk_pressure: true,
        ..PressureInputs::default()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_restart = Timestamp::now();
    cluster.server.restart_listener().expect("listening again");

    wait_for(|| {
        stored_lease(&cluster.server).is_some_and(|lease| renew_time(&lease) > before_restart)
    })
    .await;
    let nodes = resources::find("", "v1", "nodes").expect("nodes");
    wait_for(|| {
        cluster
            .server
            .store()
            .get(nodes, "", NODE)
            .is_ok_and(|node| {
                node["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "DiskPressure" && c["status"] == "True")
            })
    })
    .await;
    assert!(
        !lease_task.is_finished() && !status_task.is_finished(),
        "the loops live on"
    );
    lease_task.abort();
    status_task.abort();
}

/// Polls `done` every 50 ms for up to 10 s.
async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting");
}

/// A kubeconfig's bearer token goes out with the requests: a one-shot HTTP responder records
/// the request the client sends.
#[tokio::test]
async fn the_kubeconfig_bearer_token_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let addr = listener.local_addr().expect("an address");
    let dir = tempfile::tempdir().expect("a temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: u\n  user:\n    token: secret-token\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n\
             current-context: x\n"
        ),
    )
    .expect("kubeconfig written");
    let responder = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("a connection");
        let mut request = vec![0; 8192];
        let n = stream.read(&mut request).await.expect("a request");
        let body = r#"{"major":"1","minor":"32","gitVersion":"v1.32.0","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":"linux/amd64"}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(response.as_bytes())
            .await
            .expect("a response");
        String::from_utf8_lossy(&request[..n]).to_lowercase()
    });
    let client = client_from_kubeconfig(&kubeconfig, ApiRateLimit::default())
        .await
        .expect("a client");
    let version = client.apiserver_version().await.expect("the version");
    assert_eq!(version.git_version, "v1.32.0");
    let request = responder.await.expect("the responder");
    assert!(
        request.contains("authorization: bearer secret-token"),
        "{request}"
    );
}

/// The real kubectl reads what the kubelet posted: the node is Ready with its version, and
/// describe shows the conditions, the taint and the lease holder. (The test server's table
/// for `get nodes` has no STATUS column, so the fields are read through jsonpath.)
#[tokio::test]
async fn kubectl_sees_a_ready_node() {
    let cluster = cluster().await;
    register_node(
        &cluster.client,
        &info(),
        &machine(),
        &PressureInputs::default(),
    )
    .await
    .expect("registered");
    LeaseLoop::new(
        cluster.client.clone(),
        NODE.to_string(),
        LeaseConfig::default(),
    )
    .renew()
    .await
    .expect("the lease");
    let kubeconfig = cluster.dir.path().join("kubeconfig");
    let kubectl = move |args: &[&str]| {
        let output = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(output.status.success(), "kubectl {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let (get, describe) = tokio::task::spawn_blocking(move || {
        (
            kubectl(&[
                "get",
                "nodes",
                "-o",
                r#"jsonpath={.items[*].metadata.name} {.items[*].status.conditions[?(@.type=="Ready")].status} {.items[*].status.nodeInfo.kubeletVersion}"#,
            ]),
            kubectl(&["describe", "node", NODE]),
        )
    })
    .await
    .expect("kubectl finished");
    assert_eq!(get.trim(), format!("{NODE} True v1.32.0"));
    for expected in [
        "KubeletReady",
        "kubelet is posting ready status",
        "KubeletHasNoDiskPressure",
        "HolderIdentity:  node-a",
        "containerd://1.6.20",
        "dedicated=edge:NoSchedule",
    ] {
        assert!(describe.contains(expected), "{expected} in {describe}");
    }
}
