//! exec and port-forward end to end against the private containerd of the test run: a busybox
//! pod, a WebSocket client speaking v4.channel.k8s.io to the kubelet port, and the kubelet
//! proxying the upgraded connection to containerd's streaming server.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_cri::RuntimeService;
use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata,
};
use kubelet_server::{KubeletView, ServerConfig, serve};
use kubelet_testkit::TestRuntime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BUSYBOX: &str = "localhost/busybox:1.35";
const NAMESPACE: &str = "streams";

struct PodView {
    runtime: Arc<dyn kubelet_cri::Runtime>,
    pods: Vec<Pod>,
}

#[async_trait::async_trait]
impl KubeletView for PodView {
    fn node_name(&self) -> String {
        "node-a".into()
    }
    fn pods(&self) -> Vec<Pod> {
        self.pods.clone()
    }
    fn runtime(&self) -> Arc<dyn kubelet_cri::Runtime> {
        self.runtime.clone()
    }
    fn sync_loop_healthy(&self) -> Result<(), String> {
        Ok(())
    }
    fn configz(&self) -> serde_json::Value {
        serde_json::json!({})
    }
}

fn labels(uid: &str, name: &str) -> HashMap<String, String> {
    HashMap::from([
        ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
        ("io.kubernetes.pod.name".to_string(), name.to_string()),
        (
            "io.kubernetes.pod.namespace".to_string(),
            NAMESPACE.to_string(),
        ),
    ])
}

/// Runs pod `name` with one busybox container `app` running `script`; returns the pod as the
/// kubelet knows it.
async fn run_pod(rt: &TestRuntime, uid: &str, name: &str, logs: &Path, script: &str) -> Pod {
    let runtime = rt.connect().await;
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: NAMESPACE.to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: logs.display().to_string(),
        labels: labels(uid, name),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: rt.pod_cgroup_parent(uid),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Pod as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = runtime.run_pod_sandbox(config.clone(), "").await.unwrap();
    let mut container_labels = labels(uid, name);
    container_labels.insert("io.kubernetes.container.name".into(), "app".into());
    let container = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: BUSYBOX.into(),
            ..Default::default()
        }),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        log_path: "app/0.log".into(),
        labels: container_labels,
        ..Default::default()
    };
    let id = runtime
        .create_container(&sandbox, container, config)
        .await
        .unwrap();
    runtime.start_container(&id).await.unwrap();
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn unique_uid(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{test}-{}-{nanos:09}", std::process::id())
}

async fn start_server(dir: &Path, view: PodView) -> (ServerConfig, tokio::task::JoinHandle<()>) {
    let cfg = support::server_config(dir);
    let server = serve(cfg.clone(), Arc::new(view)).await.unwrap();
    (cfg, server)
}

fn tls_config(cfg: &ServerConfig) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cfg.cert_dir.join("kubelet.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(cfg: &ServerConfig, path_and_query: &str) -> Socket {
    let mut request = format!("wss://localhost:{}{path_and_query}", cfg.port)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let (socket, response) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls_config(cfg))),
    )
    .await
    .unwrap_or_else(|e| panic!("WebSocket to {path_and_query}: {e}"));
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "v4.channel.k8s.io"
    );
    socket
}

/// Sends a SPDY/3.1 upgrade request over TLS; returns the status line and headers of the answer.
async fn spdy_upgrade(cfg: &ServerConfig, path_and_query: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", cfg.port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(tls_config(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let request = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (status, headers) = text.split_once("\r\n").unwrap();
    (status.to_string(), headers.to_string())
}

/// Reads channel messages until the server closes: the bytes per channel.
async fn read_channels(socket: &mut Socket) -> HashMap<u8, Vec<u8>> {
    let mut channels: HashMap<u8, Vec<u8>> = HashMap::new();
    let read = async {
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                Message::Binary(data) if !data.is_empty() => {
                    channels.entry(data[0]).or_default().extend(&data[1..]);
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the stream did not end");
    channels
}

fn text(channels: &HashMap<u8, Vec<u8>>, channel: u8) -> String {
    String::from_utf8_lossy(channels.get(&channel).map_or(&[][..], |v| v)).into_owned()
}

#[tokio::test]
async fn exec_streams_output_input_and_exit_status_through_the_kubelet() {
    let rt = kubelet_testkit::containerd();
    let uid = unique_uid("server-exec");
    let _guard = rt.pod_guard(&uid);
    let dir = rt.temp_dir("server-exec");
    let pod = run_pod(&rt, &uid, "shell", dir.path(), "exec sleep 3600").await;
    let view = PodView {
        runtime: Arc::new(rt.connect().await),
        pods: vec![pod],
    };
    let (cfg, server) = start_server(dir.path(), view).await;

    let mut socket = connect(
        &cfg,
        "/exec/streams/shell/app?command=echo&command=hi&output=1&error=1",
    )
    .await;
    let channels = read_channels(&mut socket).await;
    assert_eq!(text(&channels, 1), "hi\n");
    let status: serde_json::Value = serde_json::from_slice(&channels[&3]).unwrap();
    assert_eq!(status["status"], "Success", "{status}");

    // stdin (channel 0) reaches the command; a failing command reports its exit code.
    let mut socket = connect(
        &cfg,
        "/exec/streams/shell/app?command=sh&command=-c&command=read+line%3B+echo+got+%24line%3B+echo+oops+%3E%262%3B+exit+3&input=1&output=1&error=1",
    )
    .await;
    socket
        .send(Message::Binary(b"\x00hello\n".to_vec().into()))
        .await
        .unwrap();
    let channels = read_channels(&mut socket).await;
    assert_eq!(text(&channels, 1), "got hello\n");
    assert_eq!(text(&channels, 2), "oops\n");
    let status: serde_json::Value = serde_json::from_slice(&channels[&3]).unwrap();
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    // The pod's uid may be named in the path.
    let mut socket = connect(
        &cfg,
        &format!("/exec/streams/shell/{uid}/app?command=hostname&output=1"),
    )
    .await;
    assert_eq!(text(&read_channels(&mut socket).await, 1), "shell\n");

    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(cfg.cert_dir.join("kubelet.crt")).unwrap(),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let get = |path: &str| {
        client
            .get(format!("https://localhost:{}{path}", cfg.port))
            .send()
    };
    let response = get("/exec/streams/shell/nope?command=ls&output=1")
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        "container not found (\"nope\")"
    );
    let response = get("/exec/streams/ghost/app?command=ls&output=1")
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.text().await.unwrap(), "pod does not exist");
    let response = get("/exec/streams/shell/app?command=ls").await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // SPDY: the upgrade and its protocol negotiation headers reach containerd, whose 101 comes
    // back through the kubelet.
    let (status, headers) =
        spdy_upgrade(&cfg, "/exec/streams/shell/app?command=true&output=1").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}\n{headers}");
    let lower = headers.to_ascii_lowercase();
    assert!(lower.contains("upgrade: spdy/3.1"), "{headers}");
    assert!(
        lower.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{headers}"
    );

    // Without an upgrade there is no stream to proxy.
    let response = get("/exec/streams/shell/app?command=ls&output=1")
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(response.text().await.unwrap(), "Upgrade request required\n");
    server.abort();
}

#[tokio::test]
async fn port_forward_reaches_a_server_in_the_pod() {
    let rt = kubelet_testkit::containerd();
    let uid = unique_uid("server-portforward");
    let _guard = rt.pod_guard(&uid);
    let dir = rt.temp_dir("server-portforward");
    let pod = run_pod(
        &rt,
        &uid,
        "web",
        dir.path(),
        "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 8080 -h /www",
    )
    .await;
    let view = PodView {
        runtime: Arc::new(rt.connect().await),
        pods: vec![pod],
    };
    let (cfg, server) = start_server(dir.path(), view).await;

    // httpd needs a moment to listen; each attempt is a new forwarded connection.
    let mut body = String::new();
    for _ in 0..50 {
        let mut socket = connect(&cfg, "/portForward/streams/web?port=8080").await;
        let mut request = vec![0u8];
        request.extend(b"GET /index.html HTTP/1.0\r\nHost: web\r\n\r\n");
        socket.send(Message::Binary(request.into())).await.unwrap();
        let channels = read_channels(&mut socket).await;
        // The first two bytes of each channel are the port (little-endian).
        let data = channels.get(&0).cloned().unwrap_or_default();
        assert_eq!(&data[..2], &8080u16.to_le_bytes());
        body = String::from_utf8_lossy(&data[2..]).into_owned();
        if body.contains("hello-from-httpd") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("hello-from-httpd"), "{body}");
    server.abort();
}
