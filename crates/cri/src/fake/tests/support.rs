//! Configs shaped like the kubelet's, and shortcuts to a running pod.

use crate::RuntimeService;
use crate::api::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatus, ImageSpec,
    PodSandboxConfig, PodSandboxMetadata,
};
use crate::fake::FakeRuntime;
use std::collections::HashMap;

pub const IMAGE: &str = "busybox";

pub fn sandbox_config(pod: &str) -> PodSandboxConfig {
    let uid = format!("uid-{pod}");
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod.to_string(),
            uid: uid.clone(),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        hostname: pod.to_string(),
        log_directory: format!("/var/log/pods/default_{pod}_{uid}"),
        labels: HashMap::from([
            ("io.kubernetes.pod.name".to_string(), pod.to_string()),
            ("io.kubernetes.pod.uid".to_string(), uid),
        ]),
        annotations: HashMap::from([(
            "kubernetes.io/config.source".to_string(),
            "file".to_string(),
        )]),
        ..Default::default()
    }
}

pub fn container_config(name: &str, image: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        labels: HashMap::from([("io.kubernetes.container.name".to_string(), name.to_string())]),
        annotations: HashMap::from([(
            "io.kubernetes.container.restartCount".to_string(),
            "0".to_string(),
        )]),
        log_path: format!("{name}/0.log"),
        ..Default::default()
    }
}

/// A fake with the default image and a ready sandbox for `pod`.
pub async fn fake_with_pod(pod: &str) -> (FakeRuntime, String) {
    let fake = FakeRuntime::new();
    fake.add_image(IMAGE);
    let sandbox = fake
        .run_pod_sandbox(sandbox_config(pod), "")
        .await
        .expect("sandbox runs");
    (fake, sandbox)
}

/// Creates and starts container `name` of `pod` in `sandbox`.
pub async fn start(fake: &FakeRuntime, sandbox: &str, pod: &str, name: &str) -> String {
    let id = fake
        .create_container(sandbox, container_config(name, IMAGE), sandbox_config(pod))
        .await
        .expect("container is created");
    fake.start_container(&id).await.expect("container starts");
    id
}

pub async fn status(fake: &FakeRuntime, id: &str) -> ContainerStatus {
    fake.container_status(id).await.expect("status")
}

pub async fn state(fake: &FakeRuntime, id: &str) -> ContainerState {
    status(fake, id).await.state()
}
