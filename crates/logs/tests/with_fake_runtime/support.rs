//! A fake runtime with running containers whose logs live in a temporary folder.

use kubelet_cri::RuntimeService;
use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
};
use kubelet_cri::fake::FakeRuntime;
use kubelet_logs::WallClock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// 2024-03-05T07:08:09Z.
const START_SECS: u64 = 1_709_622_489;

/// A pod's sandbox whose log directory is `pod_log_dir`.
pub async fn run_sandbox(fake: &FakeRuntime, pod_log_dir: &Path) -> (String, PodSandboxConfig) {
    fake.add_image("busybox");
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "web".into(),
            uid: "uid-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: pod_log_dir.to_string_lossy().into_owned(),
        ..Default::default()
    };
    let id = fake.run_pod_sandbox(config.clone(), "").await.unwrap();
    (id, config)
}

/// Starts a container named `name` logging to `<pod_log_dir>/<name>/0.log`, creates that file
/// with `content` as the runtime would, and returns the container id and the log path.
pub async fn start_container(
    fake: &FakeRuntime,
    sandbox: &(String, PodSandboxConfig),
    name: &str,
    content: &str,
) -> (String, PathBuf) {
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        log_path: format!("{name}/0.log"),
        ..Default::default()
    };
    let id = fake
        .create_container(&sandbox.0, config, sandbox.1.clone())
        .await
        .unwrap();
    fake.start_container(&id).await.unwrap();
    let log = PathBuf::from(fake.container_status(&id).await.unwrap().log_path);
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, content).unwrap();
    (id, log)
}

/// A clock that starts at [`START_SECS`] and moves one second each time it is read, so each
/// rotation gets its own timestamp.
pub fn ticking_clock() -> WallClock {
    let next = Arc::new(AtomicU64::new(START_SECS));
    Arc::new(move || {
        SystemTime::UNIX_EPOCH + Duration::from_secs(next.fetch_add(1, Ordering::SeqCst))
    })
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

pub fn count(calls: &[String], call: &str) -> usize {
    calls.iter().filter(|c| *c == call).count()
}
