//! The kubelet proxy paths against a fake HTTPS kubelet that requires a client certificate
//! from the cluster CA: pods/log streaming, an upgraded exec spliced both ways, node proxy.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kubelet_test_apiserver::TestApiServer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// What the fake kubelet saw: each request's path and query, and the client's CN.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A fake kubelet on 127.0.0.1 that trusts client certificates from `ca_pem`, as a kubelet
/// with --client-ca-file does. Returns its port.
async fn fake_kubelet(ca_pem: &str, seen: Seen) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let serving = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![serving.cert.der().clone()],
            PrivateKeyDer::from_pem_slice(serving.signing_key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
                let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
                let cn = cert
                    .subject()
                    .iter_common_name()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string();
                let service = service_fn(move |req| kubelet(req, cn.clone(), seen.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

async fn kubelet(
    mut req: Request<Incoming>,
    cn: String,
    seen: Seen,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    seen.lock().unwrap().push((format!("{path}?{query}"), cn));
    if path.starts_with("/containerLogs/") {
        // Two lines, the second a little later, as a followed log.
        let stream = futures::stream::unfold(0, |n| async move {
            match n {
                0 => Some((Ok(Frame::data(Bytes::from("line 1\n"))), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok(Frame::data(Bytes::from("line 2\n"))), 2))
                }
                _ => None,
            }
        });
        return Ok(Response::new(StreamBody::new(stream).boxed()));
    }
    if path.starts_with("/exec/") {
        let protocol = req.headers().get("x-stream-protocol-version").cloned();
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => io.write_all(&buf[..n]).await.unwrap(),
                }
            }
        });
        let mut resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "Upgrade")
            .header("upgrade", "SPDY/3.1");
        if let Some(protocol) = protocol {
            resp = resp.header("x-stream-protocol-version", protocol);
        }
        return Ok(resp.body(Full::new(Bytes::new()).boxed()).unwrap());
    }
    Ok(Response::new(
        Full::new(Bytes::from(r#"{"node":{"nodeName":"n1"}}"#)).boxed(),
    ))
}

fn setup(server: &TestApiServer, port: u16) {
    let store = server.store();
    store
        .put(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }}))
        .unwrap();
    store
        .put(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap();
}

#[tokio::test]
async fn pod_logs_stream_from_the_kubelet() {
    let server = TestApiServer::start();
    let seen = Seen::default();
    setup(&server, fake_kubelet(server.ca_pem(), seen.clone()).await);

    let resp = reqwest::get(format!(
        "{}/api/v1/namespaces/default/pods/web/log?follow=true&tailLines=10&timestamps=true",
        server.url()
    ))
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut stream = resp.bytes_stream();
    use futures::StreamExt;
    assert_eq!(stream.next().await.unwrap().unwrap(), "line 1\n");
    assert_eq!(stream.next().await.unwrap().unwrap(), "line 2\n");
    let (path, cn) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        path,
        "/containerLogs/default/web/c?follow=true&timestamps=true&tailLines=10"
    );
    assert_eq!(cn, "kube-apiserver-kubelet-client");

    // kubectl logs reads it too.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.kubeconfig(&kubeconfig).unwrap();
    let out = tokio::process::Command::new("kubectl")
        .args(["logs", "web", "-c", "c"])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line 1\nline 2\n");

    // Two containers and none named: refused as upstream does.
    server
        .store()
        .put(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two", "namespace": "default"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}}))
        .unwrap();
    let resp = reqwest::get(format!(
        "{}/api/v1/namespaces/default/pods/two/log",
        server.url()
    ))
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let status: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        status["message"],
        "a container name must be specified for pod two, choose one of: [a b]"
    );
}

#[tokio::test]
async fn exec_upgrades_and_splices_both_ways_over_tls() {
    let server = TestApiServer::builder().tls(true).start();
    let seen = Seen::default();
    setup(&server, fake_kubelet(server.ca_pem(), seen.clone()).await);
    let (cert, key) = server.issue_client_cert("kubernetes-admin", &["system:masters"]);

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(
        b"POST /api/v1/namespaces/default/pods/web/exec?command=sh&command=-c&command=echo%20hi&stdin=true&stdout=true&tty=true HTTP/1.1\r\n\
          Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
          X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    assert!(head.contains("upgrade: spdy/3.1"), "{head}");

    for message in [&b"hello"[..], b"kubelet"] {
        tls.write_all(message).await.unwrap();
        let mut echo = vec![0u8; message.len()];
        tls.read_exact(&mut echo).await.unwrap();
        assert_eq!(echo, message);
    }
    let (path, cn) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        path,
        "/exec/default/web/c?input=1&output=1&tty=1&command=sh&command=-c&command=echo+hi"
    );
    assert_eq!(cn, "kube-apiserver-kubelet-client");
    let user = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/exec"))
        .unwrap()
        .user
        .unwrap();
    assert_eq!(user.username, "kubernetes-admin");
}

#[tokio::test]
async fn node_proxy_refuses_loopback_kubelets_as_upstream() {
    // Upstream's proxyutil.IsProxyableIP: nodes/NAME/proxy never reaches a loopback address
    // (the kubelet end-to-end suites reach a kubelet on the host's address through it).
    let server = TestApiServer::start();
    let seen = Seen::default();
    setup(&server, fake_kubelet(server.ca_pem(), seen.clone()).await);
    let resp = reqwest::get(format!(
        "{}/api/v1/nodes/n1/proxy/stats/summary?only_cpu_and_memory=true",
        server.url()
    ))
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let status: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(status["message"], "address not allowed");
    assert!(seen.lock().unwrap().is_empty());

    let resp = reqwest::get(format!("{}/api/v1/nodes/n2/proxy/metrics", server.url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}
