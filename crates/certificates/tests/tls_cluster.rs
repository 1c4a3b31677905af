//! Bootstrap and rotation against the TLS test API server: its csrapprover approves, its
//! signer issues, and it authenticates the kubelet by the certificate it presents.

mod common;

use std::time::Duration;

use common::{BOOTSTRAP_TOKEN, write_bootstrap_kubeconfig};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kubelet_certificates::{CertificateManager, bootstrap, client_builder};
use kubelet_test_apiserver::TestApiServer;

async fn config_of(path: &std::path::Path) -> kube::Config {
    kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(path).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config")
}

/// Lists nodes with `client`; the user the server authenticated.
async fn list_nodes_as(server: &TestApiServer, client: &kube::Client) -> (String, Vec<String>) {
    server.clear_requests();
    Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("lists nodes");
    let user = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/nodes")
        .and_then(|r| r.user)
        .expect("an authenticated request");
    (user.username, user.groups)
}

/// The CSRs, oldest first.
async fn csrs(admin: &kube::Client) -> Vec<CertificateSigningRequest> {
    let mut items = Api::<CertificateSigningRequest>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .expect("CSRs")
        .items;
    items.sort_by_key(|c| {
        c.metadata
            .resource_version
            .clone()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or_default()
    });
    items
}

#[tokio::test]
async fn a_bootstrapped_kubelet_authenticates_and_renews_with_its_certificate() {
    // Certificates of 30 s, backdated by 5 min as upstream's signer does: due for renewal
    // as soon as they are issued.
    let server = TestApiServer::builder()
        .tls(true)
        .auto_approve_csrs(true)
        .csr_signing_duration(Duration::from_secs(30))
        .start();
    server.add_bootstrap_token(BOOTSTRAP_TOKEN, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_path = dir.path().join("admin.conf");
    server.kubeconfig(&admin_path).expect("admin kubeconfig");
    let admin = client_builder(config_of(&admin_path).await, None)
        .unwrap()
        .build();

    let bootstrap_path = dir.path().join("bootstrap-kubelet.conf");
    let kubeconfig = dir.path().join("kubelet.conf");
    let cert_dir = dir.path().join("pki");
    write_bootstrap_kubeconfig(&bootstrap_path, &server.url(), Some(server.ca_pem()));
    bootstrap(&kubeconfig, &bootstrap_path, &cert_dir, "node-a")
        .await
        .expect("bootstrapped");

    let requested = csrs(&admin).await;
    assert_eq!(requested.len(), 1);
    assert_eq!(
        requested[0].spec.username.as_deref(),
        Some("system:bootstrap:07401b")
    );

    // The written kubeconfig authenticates as the node.
    let (user, groups) = list_nodes_as(
        &server,
        &client_builder(config_of(&kubeconfig).await, None)
            .unwrap()
            .build(),
    )
    .await;
    assert_eq!(user, "system:node:node-a");
    assert!(groups.contains(&"system:nodes".to_string()), "{groups:?}");

    // Rotation: the manager renews through the client that presents its certificate.
    let manager = CertificateManager::client(&cert_dir, "node-a", &kubeconfig).expect("manager");
    let current = manager.current();
    let first = current.get().expect("the bootstrapped certificate");
    let client = client_builder(config_of(&kubeconfig).await, Some(current.clone()))
        .unwrap()
        .build();
    assert_eq!(
        list_nodes_as(&server, &client).await.0,
        "system:node:node-a"
    );
    let mut changes = current.subscribe();
    let rotation = tokio::spawn(manager.run(client.clone()));
    tokio::time::timeout(Duration::from_secs(20), changes.changed())
        .await
        .expect("renewed in time")
        .expect("managed");
    rotation.abort();
    let renewed = current.get().expect("renewed");
    assert_ne!(renewed.leaf().serial, first.leaf().serial);

    // The renewal was asked for by the node itself, and approved as such.
    let requested = csrs(&admin).await;
    let renewal = requested.get(1).expect("a renewal request");
    assert_eq!(renewal.spec.username.as_deref(), Some("system:node:node-a"));
    assert!(
        renewal
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("csr-")
    );
    let approved = renewal
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .unwrap();
    assert_eq!(approved[0].reason.as_deref(), Some("AutoApproved"));

    // The same client goes on with the renewed certificate.
    assert_eq!(
        list_nodes_as(&server, &client).await.0,
        "system:node:node-a"
    );
}
