//! TLS bootstrap against the test API server, with the test playing the CSR signer.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use common::{BOOTSTRAP_TOKEN, TestCa, Verdict, spawn_signer, write_bootstrap_kubeconfig};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kubelet_certificates::{CertificateError, CertificatePair, bootstrap};
use kubelet_test_apiserver::TestApiServer;

fn admin_client(server: &TestApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().expect("url"))).expect("client")
}

#[tokio::test]
async fn bootstrap_requests_stores_and_writes_the_kubeconfig() {
    let server = TestApiServer::start();
    server.add_bootstrap_token(BOOTSTRAP_TOKEN, &[]);
    let ca = Arc::new(TestCa::new());
    let (signer, seen) = spawn_signer(
        admin_client(&server),
        ca.clone(),
        Verdict::Approve(Duration::from_secs(3600)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap_path = dir.path().join("bootstrap-kubelet.conf");
    let kubeconfig = dir.path().join("kubelet.conf");
    let cert_dir = dir.path().join("pki");
    write_bootstrap_kubeconfig(&bootstrap_path, &server.url(), None);

    bootstrap(&kubeconfig, &bootstrap_path, &cert_dir, "node-a")
        .await
        .expect("bootstrapped");

    // The request, as upstream makes it.
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let csr = &requests[0];
    let name = csr.metadata.name.as_deref().unwrap();
    assert!(name.starts_with("node-csr-"), "{name}");
    assert_eq!(
        csr.spec.signer_name,
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert_eq!(
        csr.spec.usages.as_deref().unwrap(),
        ["digital signature", "client auth"]
    );
    assert_eq!(csr.spec.expiration_seconds, None);
    let request = String::from_utf8(csr.spec.request.0.clone()).unwrap();
    let parsed = rcgen::CertificateSigningRequestParams::from_pem(&request).expect("a CSR");
    let subject = &parsed.params.distinguished_name;
    assert_eq!(
        subject.get(&rcgen::DnType::CommonName),
        Some(&rcgen::DnValue::Utf8String("system:node:node-a".into()))
    );
    assert_eq!(
        subject.get(&rcgen::DnType::OrganizationName),
        Some(&rcgen::DnValue::Utf8String("system:nodes".into()))
    );

    // The stored pair: a dated file (0600) behind the current symlink.
    let current = cert_dir.join("kubelet-client-current.pem");
    let target = std::fs::read_link(&current).expect("symlink");
    let file_name = target.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        file_name.starts_with("kubelet-client-") && file_name.ends_with(".pem"),
        "{file_name}"
    );
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pem = std::fs::read(&current).unwrap();
    let pair = CertificatePair::from_pem(&pem, &pem).expect("cert and key");
    assert_eq!(pair.leaf().common_name, "system:node:node-a");
    assert!(!cert_dir.join("kubelet-client.key.tmp").exists());

    // The kubeconfig: the bootstrap cluster, the current pem for certificate and key.
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    assert_eq!(written["current-context"], "default-context");
    assert_eq!(written["clusters"][0]["name"], "default-cluster");
    assert_eq!(written["clusters"][0]["cluster"]["server"], server.url());
    let user = &written["users"][0]["user"];
    assert_eq!(user["client-certificate"], current.to_str().unwrap());
    assert_eq!(user["client-key"], current.to_str().unwrap());
    assert_eq!(written["contexts"][0]["context"]["namespace"], "default");

    // The written kubeconfig is usable as it is.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .expect("loads");
    let client = kubelet_certificates::client_builder(config, None)
        .unwrap()
        .build();
    Api::<Node>::all(client)
        .list(&ListParams::default())
        .await
        .expect("lists nodes");

    // A valid kubeconfig is left alone: no second request.
    bootstrap(&kubeconfig, &bootstrap_path, &cert_dir, "node-a")
        .await
        .expect("nothing to do");
    assert_eq!(seen.lock().unwrap().len(), 1);
    signer.abort();
}

#[tokio::test]
async fn a_denied_request_fails_the_bootstrap_with_its_reason() {
    let server = TestApiServer::start();
    server.add_bootstrap_token(BOOTSTRAP_TOKEN, &[]);
    let (signer, _) = spawn_signer(
        admin_client(&server),
        Arc::new(TestCa::new()),
        Verdict::Deny {
            reason: "NotAllowed".into(),
            message: "node-a may not join".into(),
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap_path = dir.path().join("bootstrap-kubelet.conf");
    write_bootstrap_kubeconfig(&bootstrap_path, &server.url(), None);
    let err = bootstrap(
        &dir.path().join("kubelet.conf"),
        &bootstrap_path,
        &dir.path().join("pki"),
        "node-a",
    )
    .await
    .expect_err("denied");
    assert!(matches!(err, CertificateError::Denied { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "certificate signing request is denied, reason: NotAllowed, message: node-a may not join"
    );
    // The key is kept for the next try, which reuses the same request name.
    assert!(dir.path().join("pki/kubelet-client.key.tmp").exists());
    assert!(!dir.path().join("kubelet.conf").exists());
    signer.abort();
}

#[tokio::test]
async fn a_restarted_bootstrap_reuses_its_pending_request() {
    let server = TestApiServer::start();
    server.add_bootstrap_token(BOOTSTRAP_TOKEN, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap_path = dir.path().join("bootstrap-kubelet.conf");
    let kubeconfig = dir.path().join("kubelet.conf");
    let cert_dir = dir.path().join("pki");
    write_bootstrap_kubeconfig(&bootstrap_path, &server.url(), None);

    // The first kubelet asks, then stops before any answer.
    let first = tokio::spawn({
        let (kubeconfig, bootstrap_path, cert_dir) =
            (kubeconfig.clone(), bootstrap_path.clone(), cert_dir.clone());
        async move { bootstrap(&kubeconfig, &bootstrap_path, &cert_dir, "node-a").await }
    });
    let admin = admin_client(&server);
    let csrs =
        Api::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>::all(admin.clone());
    let pending = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let items = csrs.list(&ListParams::default()).await.expect("CSRs").items;
            if let Some(csr) = items.into_iter().next() {
                return csr;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a request was made");
    first.abort();
    assert!(cert_dir.join("kubelet-client.key.tmp").exists());

    // The next one finds the same request (same key, same digest name) and gets its answer.
    let (signer, _) = spawn_signer(
        admin,
        Arc::new(TestCa::new()),
        Verdict::Approve(Duration::from_secs(3600)),
    );
    bootstrap(&kubeconfig, &bootstrap_path, &cert_dir, "node-a")
        .await
        .expect("bootstrapped");
    let items = csrs.list(&ListParams::default()).await.expect("CSRs").items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].metadata.name, pending.metadata.name);
    assert!(!cert_dir.join("kubelet-client.key.tmp").exists());
    signer.abort();
}
