//! The cases, and the CRI requests they share.

mod containers;
mod events;
mod recovery;
mod sandboxes;
mod service;
mod stats;
mod streaming;

use crate::fixture::{BUSYBOX, Fixture};
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use runtime_service::Runtime;
use std::time::{Duration, Instant};
use tonic::Request;

pub type Case = fn(&Fixture);

pub const ALL: &[(&str, Case)] = &[
    (
        "service_version_status_and_config",
        service::version_status_and_config,
    ),
    ("service_unimplemented", service::unimplemented),
    ("service_served_on_a_socket", service::served_on_a_socket),
    ("sandbox_lifecycle", sandboxes::lifecycle),
    ("sandbox_host_network", sandboxes::host_network),
    ("sandbox_missing_objects", sandboxes::missing_objects),
    ("container_lifecycle_runc", containers::lifecycle_runc),
    ("container_lifecycle_crun", containers::lifecycle_crun),
    ("container_exits", containers::exits),
    (
        "container_failures_roll_back",
        containers::failures_roll_back,
    ),
    (
        "container_shared_pid_namespace",
        containers::shared_pid_namespace,
    ),
    ("recovery_running_container", recovery::running_container),
    ("recovery_cut_off_creates", recovery::cut_off_creates),
    ("recovery_after_kill_9", recovery::after_kill_9),
    ("burst_of_pods", containers::burst),
    ("events_under_churn", events::churn_order_and_completeness),
    ("stats_match_the_kernel", stats::figures_match_the_kernel),
    ("streaming_runc", streaming::sessions_runc),
    ("streaming_crun", streaming::sessions_crun),
];

/// A pod with its own namespaces (pid CONTAINER, as the kubelet sets it) below the fixture's
/// cgroup base.
pub fn pod(fx: &Fixture, name: &str) -> PodSandboxConfig {
    let uid = format!("uid-{name}");
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.clone(),
            namespace: "krs".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: fx.log_dir(name).to_string_lossy().into_owned(),
        dns_config: Some(DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["krs.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        labels: [("app".to_string(), name.to_string())].into(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/pod{uid}", fx.cgroup_base),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    pid: NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn container(name: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: BUSYBOX.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: [("container".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

pub async fn run_pod(rt: &Runtime, config: PodSandboxConfig, handler: &str) -> String {
    rt.run_pod_sandbox(Request::new(RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: handler.into(),
    }))
    .await
    .expect("RunPodSandbox")
    .into_inner()
    .pod_sandbox_id
}

pub async fn create(
    rt: &Runtime,
    pod_id: &str,
    pod: &PodSandboxConfig,
    c: ContainerConfig,
) -> String {
    rt.create_container(Request::new(CreateContainerRequest {
        pod_sandbox_id: pod_id.into(),
        config: Some(c),
        sandbox_config: Some(pod.clone()),
    }))
    .await
    .expect("CreateContainer")
    .into_inner()
    .container_id
}

pub async fn start(rt: &Runtime, id: &str) {
    rt.start_container(Request::new(StartContainerRequest {
        container_id: id.into(),
    }))
    .await
    .expect("StartContainer");
}

pub async fn status(rt: &Runtime, id: &str) -> ContainerStatus {
    rt.container_status(Request::new(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    }))
    .await
    .expect("ContainerStatus")
    .into_inner()
    .status
    .expect("a status")
}

pub async fn sandbox_status(rt: &Runtime, id: &str) -> PodSandboxStatus {
    rt.pod_sandbox_status(Request::new(PodSandboxStatusRequest {
        pod_sandbox_id: id.into(),
        verbose: true,
    }))
    .await
    .expect("PodSandboxStatus")
    .into_inner()
    .status
    .expect("a status")
}

/// Polls until the container has exited (at most 20 s).
pub async fn wait_exited(rt: &Runtime, id: &str) -> ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(rt, id).await;
        if s.state == ContainerState::ContainerExited as i32 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} did not exit: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn stop_pod(rt: &Runtime, id: &str) {
    rt.stop_pod_sandbox(Request::new(StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    }))
    .await
    .expect("StopPodSandbox");
}

pub async fn remove_pod(rt: &Runtime, id: &str) {
    rt.remove_pod_sandbox(Request::new(RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    }))
    .await
    .expect("RemovePodSandbox");
}

/// Nothing of the runtime `name` is left but its (empty) skeleton: no mount, no bundle, no
/// monitor or sandbox dir, no record.
pub fn assert_clean(fx: &Fixture, name: &str) {
    let base = fx.path().join(name);
    let mounts = crate::fixture::mounts_under(&base);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    for dir in [
        "r/containers",
        "s/containers",
        "s/sandboxes",
        "r/records/sandboxes",
        "r/records/containers",
    ] {
        let left: Vec<_> = std::fs::read_dir(base.join(dir))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir} still holds {left:?}");
    }
}
