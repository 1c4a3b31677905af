//! HTTPS and authentication: the real kubectl and kube-rs with client certificates and tokens,
//! 401 without credentials, who made each request, and listener outages over TLS.

use std::path::Path;
use std::process::{Command, Output};

use kubelet_test_apiserver::{TestApiServer, UserInfo};
use serde_json::Value;

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap())
        .output()
        .expect("kubectl runs")
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn users_of(server: &TestApiServer, path: &str) -> Vec<Option<UserInfo>> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.user)
        .collect()
}

fn https_client(server: &TestApiServer) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

#[test]
fn kubectl_authenticates_with_certificates_and_tokens() {
    let server = TestApiServer::builder().tls(true).start();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let dir = tempfile::tempdir().unwrap();

    let admin = dir.path().join("admin");
    server.kubeconfig(&admin).unwrap();
    assert!(kubectl_ok(&admin, &["get", "ns", "-o", "name"]).contains("namespace/default"));
    let user = users_of(&server, "/api/v1/namespaces")
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!(user.username, "kubernetes-admin");
    assert_eq!(user.groups, ["system:masters", "system:authenticated"]);

    let node = dir.path().join("node");
    let (cert, key) = server.issue_client_cert("system:node:n1", &["system:nodes"]);
    server.kubeconfig_with_cert(&node, &cert, &key).unwrap();
    server.clear_requests();
    kubectl_ok(&node, &["get", "pods", "-A"]);
    let user = users_of(&server, "/api/v1/pods").pop().unwrap().unwrap();
    assert_eq!(user.username, "system:node:n1");
    assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);

    let token = dir.path().join("token");
    server.add_token("s3cret", "alice", &["devs"]);
    server.kubeconfig_with_token(&token, "s3cret").unwrap();
    server.clear_requests();
    kubectl_ok(&token, &["get", "cm"]);
    let user = users_of(&server, "/api/v1/namespaces/default/configmaps")
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!(
        user,
        UserInfo::new("alice", &["devs", "system:authenticated"])
    );

    let wrong = dir.path().join("wrong");
    server.kubeconfig_with_token(&wrong, "nope").unwrap();
    let out = kubectl(&wrong, &["get", "cm"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unauthorized"), "{stderr}");

    let bootstrap = dir.path().join("bootstrap");
    server.add_bootstrap_token("abcdef.0123456789abcdef", &[]);
    server
        .kubeconfig_with_token(&bootstrap, "abcdef.0123456789abcdef")
        .unwrap();
    server.clear_requests();
    kubectl_ok(&bootstrap, &["get", "nodes"]);
    let user = users_of(&server, "/api/v1/nodes").pop().unwrap().unwrap();
    assert_eq!(user.username, "system:bootstrap:abcdef");
    assert_eq!(
        user.groups,
        ["system:bootstrappers", "system:authenticated"]
    );
}

#[tokio::test]
async fn unauthenticated_requests_get_401_unless_anonymous_is_allowed() {
    let server = TestApiServer::builder().tls(true).start();
    let http = https_client(&server);
    let resp = http
        .get(format!("{}/api/v1/namespaces", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let status: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(status["code"], 401);
    let last = server.requests().pop().unwrap();
    assert_eq!((last.status, last.user), (401, None));

    server.set_allow_anonymous(true);
    let resp = http
        .get(format!("{}/api/v1/namespaces", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let user = server.requests().pop().unwrap().user.unwrap();
    assert_eq!(
        user,
        UserInfo::new("system:anonymous", &["system:unauthenticated"])
    );

    // A client certificate from another CA fails the handshake.
    let other = TestApiServer::builder().tls(true).start();
    let (cert, key) = other.issue_client_cert("mallory", &[]);
    let identity = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
    let stranger = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap())
        .identity(identity)
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("{}/version", server.url()))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn kube_rs_client_over_tls_survives_an_outage() {
    let server = TestApiServer::builder().tls(true).start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    let (cert, key) = server.issue_client_cert("system:node:n1", &["system:nodes"]);
    server.kubeconfig_with_cert(&path, &cert, &key).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let list = namespaces.list(&Default::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("kube-system"))
    );

    server.stop_listener();
    assert!(namespaces.get("default").await.is_err());
    server.restart_listener().unwrap();
    let ns = namespaces.get("default").await.unwrap();
    assert_eq!(ns.metadata.name.as_deref(), Some("default"));
    let user = server.requests().pop().unwrap().user.unwrap();
    assert_eq!(user.username, "system:node:n1");
}
