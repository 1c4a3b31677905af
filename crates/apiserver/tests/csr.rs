//! CertificateSigningRequests: approval with the real kubectl, the test signers, the
//! auto-approver of kubelet client certificates, and a kubelet-style bootstrap with kube-rs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use kubelet_test_apiserver::TestApiServer;
use rcgen::{CertificateParams, DnType, KeyPair};
use serde_json::{Value, json};

/// A PEM certificate request for `cn` in `org`, with `dns` names, and its key.
fn certificate_request(cn: &str, org: &str, dns: &[&str]) -> (String, KeyPair) {
    let mut params =
        CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    let key = KeyPair::generate().unwrap();
    (params.serialize_request(&key).unwrap().pem().unwrap(), key)
}

fn csr_object(name: &str, request_pem: &str, signer: &str, usages: &[&str]) -> Value {
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": STANDARD.encode(request_pem),
            "signerName": signer,
            "usages": usages,
        },
    })
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The subject CN, issuer CN and validity (seconds) of a PEM certificate.
fn describe(cert_pem: &[u8]) -> (String, String, i64) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let cn = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    let validity = cert.validity();
    (
        cn(cert.subject()),
        cn(cert.issuer()),
        validity.not_after.timestamp() - validity.not_before.timestamp(),
    )
}

async fn wait_for_certificate(api: &Api<CertificateSigningRequest>, name: &str) -> Vec<u8> {
    let has_cert = |csr: Option<&CertificateSigningRequest>| {
        csr.and_then(|c| c.status.as_ref())
            .and_then(|s| s.certificate.as_ref())
            .is_some()
    };
    let csr = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(api.clone(), name, has_cert),
    )
    .await
    .expect("the certificate is issued in time")
    .unwrap()
    .unwrap();
    csr.status.unwrap().certificate.unwrap().0
}

#[test]
fn kubectl_approves_and_the_signer_issues() {
    let server = TestApiServer::builder().tls(true).start();
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin");
    server.kubeconfig(&admin).unwrap();

    let (request, _) = certificate_request("system:node:n1", "system:nodes", &["n1"]);
    let manifest = dir.path().join("csr.json");
    std::fs::write(
        &manifest,
        csr_object(
            "serving-n1",
            &request,
            "kubernetes.io/kubelet-serving",
            &["digital signature", "server auth"],
        )
        .to_string(),
    )
    .unwrap();
    kubectl(
        &admin,
        &[
            "create",
            "-f",
            manifest.to_str().unwrap(),
            "--validate=false",
        ],
    );
    assert_eq!(
        kubectl(&admin, &["get", "csr", "-o", "name"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/serving-n1"
    );
    let csr: Value = serde_json::from_str(&kubectl(
        &admin,
        &["get", "csr", "serving-n1", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(csr["spec"]["username"], "kubernetes-admin");
    assert!(csr["status"].get("certificate").is_none(), "{csr}");

    kubectl(&admin, &["certificate", "approve", "serving-n1"]);
    let mut cert = String::new();
    for _ in 0..100 {
        cert = kubectl(
            &admin,
            &[
                "get",
                "csr",
                "serving-n1",
                "-o",
                "jsonpath={.status.certificate}",
            ],
        );
        if !cert.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cert = STANDARD.decode(cert).unwrap();
    let (subject, issuer, validity) = describe(&cert);
    assert_eq!(
        (subject.as_str(), issuer.as_str()),
        ("system:node:n1", "kubernetes")
    );
    // A year, plus the 5 minutes the signer backdates.
    assert_eq!(validity, 365 * 24 * 3600 + 300);
    let conditions = kubectl(
        &admin,
        &[
            "get",
            "csr",
            "serving-n1",
            "-o",
            "jsonpath={.status.conditions[0].type} {.status.conditions[0].reason}",
        ],
    );
    assert_eq!(conditions, "Approved KubectlApprove");
}

#[tokio::test]
async fn bootstrap_token_csr_is_auto_approved_and_the_certificate_authenticates() {
    let server = TestApiServer::builder()
        .tls(true)
        .auto_approve_csrs(true)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap");
    server.add_bootstrap_token("abcdef.0123456789abcdef", &[]);
    server
        .kubeconfig_with_token(&bootstrap, "abcdef.0123456789abcdef")
        .unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(client(&bootstrap).await);

    let (request, key) = certificate_request("system:node:n1", "system:nodes", &[]);
    let mut csr: CertificateSigningRequest = serde_json::from_value(csr_object(
        "",
        &request,
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["digital signature", "client auth"],
    ))
    .unwrap();
    csr.metadata.name = None;
    csr.metadata.generate_name = Some("node-csr-".into());
    csr.spec.expiration_seconds = Some(3600);
    let created = api.create(&PostParams::default(), &csr).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert_eq!(
        created.spec.username.as_deref(),
        Some("system:bootstrap:abcdef")
    );

    let cert = wait_for_certificate(&api, &name).await;
    let (subject, _, validity) = describe(&cert);
    assert_eq!(subject, "system:node:n1");
    assert_eq!(validity, 3600 + 300);
    let approved = api.get(&name).await.unwrap();
    let condition = &approved.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (condition.type_.as_str(), condition.reason.as_deref()),
        ("Approved", Some("AutoApproved"))
    );

    // The issued certificate is the node's identity from now on.
    let node = dir.path().join("node");
    server
        .kubeconfig_with_cert(
            &node,
            std::str::from_utf8(&cert).unwrap(),
            &key.serialize_pem(),
        )
        .unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client(&node).await);
    nodes.list(&Default::default()).await.unwrap();
    let user = server.requests().pop().unwrap().user.unwrap();
    assert_eq!(user.username, "system:node:n1");
    assert!(user.in_group("system:nodes"));
}

#[tokio::test]
async fn signers_refuse_invalid_requests_and_honour_the_signing_duration() {
    let server = TestApiServer::builder()
        .csr_signing_duration(Duration::from_secs(900))
        .start();
    let api: Api<CertificateSigningRequest> =
        Api::all(kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap());

    // A serving certificate needs a DNS name or IP address.
    let (request, _) = certificate_request("system:node:n1", "system:nodes", &[]);
    let csr = serde_json::from_value(csr_object(
        "no-sans",
        &request,
        "kubernetes.io/kubelet-serving",
        &["server auth"],
    ))
    .unwrap();
    api.create(&PostParams::default(), &csr).await.unwrap();
    server.approve_csr("no-sans");
    let failed = |csr: Option<&CertificateSigningRequest>| {
        csr.and_then(|c| c.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed"))
    };
    let csr = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(api.clone(), "no-sans", failed),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let status = csr.status.unwrap();
    assert!(status.certificate.is_none());
    let failure = status.conditions.unwrap().pop().unwrap();
    assert_eq!(failure.reason.as_deref(), Some("SignerValidationFailure"));

    // Without auto-approval a kubelet client CSR waits; once approved it lasts the signing
    // duration, the shorter of it and expirationSeconds.
    let (request, _) = certificate_request("system:node:n2", "system:nodes", &[]);
    let mut csr: CertificateSigningRequest = serde_json::from_value(csr_object(
        "client-n2",
        &request,
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["client auth"],
    ))
    .unwrap();
    csr.spec.expiration_seconds = Some(7200);
    api.create(&PostParams::default(), &csr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        api.get("client-n2")
            .await
            .unwrap()
            .status
            .unwrap()
            .conditions
            .is_none()
    );
    server.approve_csr("client-n2");
    let (_, _, validity) = describe(&wait_for_certificate(&api, "client-n2").await);
    assert_eq!(validity, 900 + 300);

    // expirationSeconds below 10 minutes is invalid.
    let mut short = csr.clone();
    short.metadata.name = Some("short".into());
    short.spec.expiration_seconds = Some(60);
    let err = api
        .create(&PostParams::default(), &short)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 422));
}
