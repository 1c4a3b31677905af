//! A fake runtime with one running pod, and a provider reading this machine's /proc and cgroups.

use crate::{StatsConfig, StatsProvider};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_cri::RuntimeService;
use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
};
use kubelet_cri::fake::FakeRuntime;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

pub const POD: &str = "web";
pub const NAMESPACE: &str = "default";
pub const UID: &str = "uid-web";
pub const CONTAINER: &str = "app";

pub struct Fixture {
    pub fake: FakeRuntime,
    pub provider: StatsProvider,
    pub sandbox_id: String,
    pub container_id: String,
    /// Holds the temporary root dir until the test ends.
    root: TempDir,
}

fn sandbox_config() -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: POD.to_string(),
            uid: UID.to_string(),
            namespace: NAMESPACE.to_string(),
            attempt: 0,
        }),
        labels: pod_labels(),
        ..Default::default()
    }
}

/// The labels the kubelet puts on a pod's sandbox and containers.
fn pod_labels() -> HashMap<String, String> {
    HashMap::from([
        ("io.kubernetes.pod.uid".to_string(), UID.to_string()),
        ("io.kubernetes.pod.name".to_string(), POD.to_string()),
        (
            "io.kubernetes.pod.namespace".to_string(),
            NAMESPACE.to_string(),
        ),
    ])
}

/// The fixture reading this machine's cgroups.
pub async fn fixture() -> Fixture {
    fixture_with_cgroups("/sys/fs/cgroup".into()).await
}

pub async fn fixture_with_cgroups(cgroup_mount: PathBuf) -> Fixture {
    let fake = FakeRuntime::new();
    fake.add_image("busybox");
    let sandbox = fake
        .run_pod_sandbox(sandbox_config(), "")
        .await
        .expect("sandbox");
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: CONTAINER.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "busybox".to_string(),
            ..Default::default()
        }),
        labels: {
            let mut labels = pod_labels();
            labels.insert(
                "io.kubernetes.container.name".to_string(),
                CONTAINER.to_string(),
            );
            labels
        },
        ..Default::default()
    };
    let container_id = fake
        .create_container(&sandbox, config, sandbox_config())
        .await
        .expect("create");
    fake.start_container(&container_id).await.expect("start");
    let root = TempDir::new().expect("temp dir");
    let logs = root.path().join("logs");
    let log_dir = logs.join(format!("{NAMESPACE}_{POD}_{UID}/{CONTAINER}"));
    std::fs::create_dir_all(&log_dir).expect("log dir");
    std::fs::write(log_dir.join("0.log"), vec![b'x'; 8192]).expect("log file");
    let provider = StatsProvider::new(StatsConfig {
        cgroup_mount,
        pod_cgroup_root: "/".to_string(),
        cgroups_per_qos: true,
        cgroup_driver: Default::default(),
        proc_root: "/proc".into(),
        root_dir: root.path().to_path_buf(),
        pod_logs_dir: logs,
        image_fs_from_cri: false,
    });
    Fixture {
        fake,
        provider,
        sandbox_id: sandbox,
        container_id,
        root,
    }
}

impl Fixture {
    /// The kubelet root dir the provider reads.
    pub fn root_path(&self) -> &Path {
        self.root.path()
    }
}

/// A pod object for the fixture's pod: no resources, so BestEffort.
pub fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(POD.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            uid: Some(UID.to_string()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Writes `contents` to `path`, creating its directories.
pub fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::write(path, contents).expect("write");
}
