//! A fake kubelet for the server tests: pods in memory, containers in the fake CRI runtime
//! with their log files in a temp dir.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_cri::RuntimeService;
use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
};
use kubelet_cri::fake::FakeRuntime;
use kubelet_server::{AuthorizationMode, KubeletView, ServerConfig};

pub struct FakeView {
    pub fake: FakeRuntime,
    pub pods: Mutex<Vec<Pod>>,
    pub sync_loop: Mutex<Result<(), String>>,
}

#[async_trait::async_trait]
impl KubeletView for FakeView {
    fn node_name(&self) -> String {
        "node-a".into()
    }
    fn pods(&self) -> Vec<Pod> {
        self.pods.lock().unwrap().clone()
    }
    fn runtime(&self) -> Arc<dyn kubelet_cri::Runtime> {
        Arc::new(self.fake.clone())
    }
    fn sync_loop_healthy(&self) -> Result<(), String> {
        self.sync_loop.lock().unwrap().clone()
    }
    fn configz(&self) -> serde_json::Value {
        serde_json::json!({"kubeletconfig": {"maxPods": 110}})
    }
    async fn metrics(&self, path: kubelet_server::MetricsPath) -> Option<String> {
        Some(format!("# {path:?}\n"))
    }
}

pub fn view() -> Arc<FakeView> {
    let fake = FakeRuntime::new();
    fake.add_image("busybox");
    Arc::new(FakeView {
        fake,
        pods: Mutex::new(Vec::new()),
        sync_loop: Mutex::new(Ok(())),
    })
}

pub struct RunningPod {
    pub sandbox_id: String,
    pub log_dir: PathBuf,
    config: PodSandboxConfig,
}

/// Adds the pod to the view and runs its sandbox in the fake runtime, logging under `logs`.
pub async fn run_pod(
    view: &FakeView,
    logs: &Path,
    namespace: &str,
    name: &str,
    containers: &[&str],
) -> RunningPod {
    let uid = format!("uid-{name}");
    view.pods.lock().unwrap().push(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(uid.clone()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: containers
                .iter()
                .map(|c| Container {
                    name: c.to_string(),
                    image: Some("busybox".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let log_dir = logs.join(format!("{namespace}_{name}_{uid}"));
    std::fs::create_dir_all(&log_dir).unwrap();
    let labels: HashMap<String, String> = [
        ("io.kubernetes.pod.namespace", namespace),
        ("io.kubernetes.pod.name", name),
        ("io.kubernetes.pod.uid", uid.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            namespace: namespace.into(),
            uid: uid.clone(),
            attempt: 0,
        }),
        labels,
        log_directory: log_dir.to_string_lossy().into_owned(),
        ..Default::default()
    };
    let sandbox_id = view.fake.run_pod_sandbox(config.clone(), "").await.unwrap();
    RunningPod {
        sandbox_id,
        log_dir,
        config,
    }
}

impl RunningPod {
    /// Starts instance `attempt` of a container; returns its id and log file.
    pub async fn start(&self, view: &FakeView, container: &str, attempt: u32) -> (String, PathBuf) {
        let mut labels = self.config.labels.clone();
        labels.insert("io.kubernetes.container.name".into(), container.into());
        let log_path = format!("{container}/{attempt}.log");
        std::fs::create_dir_all(self.log_dir.join(container)).unwrap();
        let id = view
            .fake
            .create_container(
                &self.sandbox_id,
                ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: container.into(),
                        attempt,
                    }),
                    image: Some(ImageSpec {
                        image: "busybox".into(),
                        ..Default::default()
                    }),
                    labels,
                    log_path: log_path.clone(),
                    ..Default::default()
                },
                self.config.clone(),
            )
            .await
            .unwrap();
        view.fake.start_container(&id).await.unwrap();
        (id, self.log_dir.join(log_path))
    }
}

/// CRI log lines, one second apart from 2024-01-01T00:00:0Ns.
pub fn cri_lines(lines: &[(u32, &str, &str)]) -> String {
    lines
        .iter()
        .map(|(second, tag, message)| {
            format!("2024-01-01T00:00:{second:02}.000000001Z stdout {tag} {message}\n")
        })
        .collect()
}

/// A free port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The kubelet port on 127.0.0.1 with everything under `dir`: a self-signed certificate,
/// anonymous requests allowed, AlwaysAllow, no webhooks.
pub fn server_config(dir: &Path) -> ServerConfig {
    ServerConfig {
        address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        port: free_port(),
        tls_cert_file: None,
        tls_private_key_file: None,
        cert_dir: dir.join("pki"),
        node_ips: vec![],
        client_ca_file: None,
        anonymous_auth: true,
        authorization_mode: AuthorizationMode::AlwaysAllow,
        tls_min_version: None,
        tls_cipher_suites: vec![],
        log_dir: dir.to_path_buf(),
        authentication_webhook: false,
        authentication_webhook_cache_ttl: kubelet_server::DEFAULT_AUTHENTICATION_CACHE_TTL,
        authorization_webhook_cache_authorized_ttl: kubelet_server::DEFAULT_AUTHORIZED_CACHE_TTL,
        authorization_webhook_cache_unauthorized_ttl:
            kubelet_server::DEFAULT_UNAUTHORIZED_CACHE_TTL,
        reviews: None,
        local_pods_dir: None,
        cert_resolver: None,
    }
}
