//! Client certificate rotation: the manager renews at the jittered point of the lifetime and
//! the live API client presents the new certificate without being rebuilt.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{TestCa, Verdict, spawn_signer, spawn_whoami_server};
use kubelet_certificates::{CertificateManager, CsrTemplate, FileStore, client_builder};
use kubelet_test_apiserver::TestApiServer;

fn admin_client(server: &TestApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().expect("url"))).expect("client")
}

/// GET / on the whoami server: the serial of the client certificate presented.
async fn presented_serial(client: &kube::Client) -> String {
    client
        .request_text(http::Request::get("/").body(Vec::new()).expect("request"))
        .await
        .expect("answered")
}

#[tokio::test]
async fn the_live_client_presents_the_rotated_certificate() {
    // The CSR side: the plain test API server with the test playing the signer, issuing
    // short-lived certificates (7 s, backdated by 1 s).
    let server = TestApiServer::start();
    let ca = Arc::new(TestCa::new());
    let lifetime = Duration::from_secs(6);
    let (signer, seen) = spawn_signer(
        admin_client(&server),
        ca.clone(),
        Verdict::Approve(lifetime),
    );

    // The first certificate, as the bootstrap left it.
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = ca.issue(&CsrTemplate::node("node-a"), lifetime);
    let first = FileStore::new("kubelet-client", dir.path())
        .update(cert.as_bytes(), key.as_bytes())
        .expect("stored");
    let manager = CertificateManager::client(dir.path(), "node-a", &dir.path().join("none.conf"))
        .expect("manager");
    let current = manager.current();
    assert_eq!(
        current.get().expect("loaded").leaf().serial,
        first.leaf().serial
    );

    // The client under test, over TLS to a server that reports the presented certificate.
    let (addr, whoami) = spawn_whoami_server(&ca).await;
    let mut config = kube::Config::new(format!("https://{addr}").parse().unwrap());
    config.root_cert = Some(vec![ca.cert_der.clone()]);
    let client = client_builder(config, Some(current.clone()))
        .expect("builder")
        .build();
    assert_eq!(presented_serial(&client).await, first.leaf().serial);
    // A second request reuses the pooled connection.
    assert_eq!(presented_serial(&client).await, first.leaf().serial);

    let mut changes = current.subscribe();
    let rotation = tokio::spawn(manager.run(admin_client(&server)));
    tokio::time::timeout(Duration::from_secs(20), changes.changed())
        .await
        .expect("rotated in time")
        .expect("still managed");
    let rotated_at = SystemTime::now();
    let second = current.get().expect("a new certificate");
    assert_ne!(second.leaf().serial, first.leaf().serial);

    // Renewed within 70%..90% of the first certificate's lifetime (plus the signing delay).
    let leaf = first.leaf();
    let total = leaf.not_after.duration_since(leaf.not_before).unwrap();
    let earliest = leaf.not_before + total.mul_f64(0.7);
    let latest = leaf.not_before + total.mul_f64(0.9) + Duration::from_secs(1);
    assert!(rotated_at >= earliest, "rotated too early");
    assert!(rotated_at <= latest, "rotated too late");

    // The same client now presents the new certificate.
    assert_eq!(presented_serial(&client).await, second.leaf().serial);

    // The renewal request, as client-go's manager makes it.
    let requests = seen.lock().unwrap().clone();
    let csr = requests.first().expect("one request");
    assert_eq!(csr.metadata.generate_name.as_deref(), Some("csr-"));
    assert!(csr.metadata.name.as_deref().unwrap().starts_with("csr-"));
    assert_eq!(
        csr.spec.signer_name,
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert_eq!(
        csr.spec.usages.as_deref().unwrap(),
        ["digital signature", "client auth"]
    );

    // The store follows: the current symlink names the new certificate.
    let stored = FileStore::new("kubelet-client", dir.path())
        .current()
        .unwrap()
        .unwrap();
    assert_eq!(stored.leaf().serial, second.leaf().serial);

    rotation.abort();
    whoami.abort();
    signer.abort();
}
