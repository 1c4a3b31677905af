//! The real kube-apiserver harness: it starts, serves kubectl as an administrator, holds nodes
//! to the Node authorizer, compacts, restarts and stops.

use kubelet_testkit::apiserver::RealApiServer;
use kubelet_testkit::kubectl::Kubectl;

#[test]
fn a_real_apiserver_holds_nodes_to_the_node_authorizer() {
    let api = RealApiServer::start();
    let namespaces = api
        .kubectl()
        .run(&["get", "namespaces", "-o", "name"])
        .unwrap();
    assert!(namespaces.contains("namespace/default"), "{namespaces}");
    // What the controller manager would have made, for pods' kube-api-access volumes.
    api.kubectl()
        .run(&["get", "serviceaccount", "default", "-n", "default"])
        .unwrap();
    api.kubectl()
        .run(&["get", "configmap", "kube-root-ca.crt", "-n", "default"])
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let node_config = dir.path().join("node.kubeconfig");
    api.node_kubeconfig(&node_config, "n1").unwrap();
    let node = Kubectl::new(&node_config);
    node.run_stdin(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n"),
    )
    .unwrap();
    node.run(&["get", "--raw", "/api/v1/nodes/n1"]).unwrap();
    let refused = node
        .run(&["get", "--raw", "/api/v1/nodes/n1/status"])
        .unwrap_err();
    assert!(refused.contains("Forbidden"), "{refused}");
    let other = node
        .run_stdin(
            &["create", "-f", "-"],
            Some("apiVersion: v1\nkind: Node\nmetadata:\n  name: n2\n"),
        )
        .unwrap_err();
    assert!(other.contains("forbidden"), "{other}");
    let audit = api.audit();
    assert!(
        audit.iter().any(|r| r.user == "system:node:n1"
            && r.uri == "/api/v1/nodes/n1/status"
            && r.code == 403),
        "{audit:?}"
    );

    api.compact();
    api.stop();
    assert!(api.kubectl().run(&["get", "nodes"]).is_err());
    api.restart();
    let nodes = api.kubectl().run(&["get", "nodes", "-o", "name"]).unwrap();
    assert_eq!(nodes.trim(), "node/n1");
}
