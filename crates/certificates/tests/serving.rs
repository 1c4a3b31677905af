//! The serving certificate (serverTLSBootstrap): requested once the node has an IP address,
//! with the node's names, and served by the resolver the kubelet's HTTPS server uses.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestCa, Verdict, spawn_signer};
use k8s_openapi::api::core::v1::NodeAddress;
use kubelet_certificates::CertificateManager;
use kubelet_test_apiserver::TestApiServer;
use rustls::pki_types::ServerName;

fn admin_client(server: &TestApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().expect("url"))).expect("client")
}

fn address(type_: &str, address: &str) -> NodeAddress {
    NodeAddress {
        type_: type_.into(),
        address: address.into(),
    }
}

/// A TLS handshake with the server at `addr` as 127.0.0.1, trusting `ca`: the serial of the
/// certificate served, or the handshake's error.
async fn served_serial(ca: &TestCa, addr: std::net::SocketAddr) -> Result<String, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(ca.client_roots())
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let der = tls.get_ref().1.peer_certificates().expect("served")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parses");
    Ok(cert.raw_serial_as_string())
}

#[tokio::test]
async fn the_serving_certificate_is_requested_with_the_node_names_and_served() {
    let server = TestApiServer::start();
    let ca = Arc::new(TestCa::new());
    let (signer, seen) = spawn_signer(
        admin_client(&server),
        ca.clone(),
        Verdict::Approve(Duration::from_secs(3600)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let addresses = Arc::new(Mutex::new(vec![address("Hostname", "node-a")]));
    let known = addresses.clone();
    let manager = CertificateManager::serving(dir.path(), "node-a", None, move || {
        known.lock().unwrap().clone()
    })
    .expect("manager");
    let current = manager.current();
    assert!(current.get().is_none());

    // The kubelet's HTTPS server: handshakes fail until a certificate is issued.
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_cert_resolver(current.server_resolver());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let https = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                }
            });
        }
    });
    assert!(served_serial(&ca, addr).await.is_err());

    let mut changes = current.subscribe();
    let rotation = tokio::spawn(manager.run(admin_client(&server)));
    // No IP address yet: nothing is requested.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(seen.lock().unwrap().is_empty());

    addresses
        .lock()
        .unwrap()
        .push(address("InternalIP", "127.0.0.1"));
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("issued in time")
        .expect("managed");
    let issued = current.get().expect("issued");
    assert_eq!(issued.leaf().common_name, "system:node:node-a");
    assert_eq!(issued.leaf().organizations, ["system:nodes"]);
    assert_eq!(issued.leaf().dns_names, ["node-a"]);
    assert_eq!(
        issued.leaf().ip_addresses,
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let csr = &requests[0];
    assert_eq!(csr.metadata.generate_name.as_deref(), Some("csr-"));
    assert_eq!(csr.spec.signer_name, "kubernetes.io/kubelet-serving");
    assert_eq!(
        csr.spec.usages.as_deref().unwrap(),
        ["digital signature", "server auth"]
    );

    let link = std::fs::read_link(dir.path().join("kubelet-server-current.pem")).expect("symlink");
    assert!(
        link.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kubelet-server-")
    );

    // The server now presents it.
    assert_eq!(
        served_serial(&ca, addr).await.expect("handshake"),
        issued.leaf().serial
    );

    rotation.abort();
    https.abort();
    signer.abort();
}
