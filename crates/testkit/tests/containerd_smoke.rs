//! RemoteRuntime against the private containerd of the test run (see the crate docs): the
//! whole CRI pod lifecycle with real containers, logs and cgroups.

use kubelet_cri::api::{
    ContainerConfig, ContainerMetadata, ContainerState, ImageSpec, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxState,
};
use kubelet_cri::remote::RemoteRuntime;
use kubelet_cri::{CriError, ImageService, RuntimeService};
use kubelet_testkit::{POD_UID_LABEL, TestRuntime};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BUSYBOX: &str = "localhost/busybox:1.35";

fn unique_uid(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{test}-{}-{nanos:09}", std::process::id())
}

fn image(name: &str) -> ImageSpec {
    ImageSpec {
        image: name.to_string(),
        ..Default::default()
    }
}

fn sandbox_config(rt: &TestRuntime, uid: &str, log_dir: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "smoke".to_string(),
            uid: uid.to_string(),
            namespace: "testkit".to_string(),
            attempt: 0,
        }),
        hostname: "smoke".to_string(),
        log_directory: log_dir.display().to_string(),
        labels: HashMap::from([(POD_UID_LABEL.to_string(), uid.to_string())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: rt.pod_cgroup_parent(uid),
            security_context: Some(LinuxSandboxSecurityContext {
                // proto3's zero value would share one PID namespace across the pod.
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
    }
}

fn container_config(uid: &str, name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(image(BUSYBOX)),
        command: vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()],
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([(POD_UID_LABEL.to_string(), uid.to_string())]),
        ..Default::default()
    }
}

async fn wait_until_exited(runtime: &RemoteRuntime, id: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = runtime.container_status(id).await.unwrap();
        if status.state == ContainerState::ContainerExited as i32 {
            return status.exit_code;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} still {:?}",
            status.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The runtime writes the log asynchronously; give it a moment after the exit.
async fn wait_for_log(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn version_and_status() {
    let runtime = kubelet_testkit::containerd().connect().await;
    let version = runtime.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    let status = runtime.status().await.unwrap().status.unwrap();
    for condition in ["RuntimeReady", "NetworkReady"] {
        let found = status.conditions.iter().find(|c| c.r#type == condition);
        assert!(
            found.is_some_and(|c| c.status),
            "{condition}: {:?}",
            status.conditions
        );
    }
}

#[tokio::test]
async fn image_status_finds_the_test_image_and_none_for_a_missing_one() {
    let runtime = kubelet_testkit::containerd().connect().await;
    let busybox = runtime
        .image_status(&image(BUSYBOX))
        .await
        .unwrap()
        .unwrap();
    assert!(busybox.id.starts_with("sha256:"), "{busybox:?}");
    assert!(
        busybox.repo_tags.iter().any(|tag| tag == BUSYBOX),
        "{busybox:?}"
    );
    assert!(busybox.size > 0);

    let missing = runtime
        .image_status(&image("localhost/no-such-image:0.0"))
        .await
        .unwrap();
    assert_eq!(missing, None);
}

#[tokio::test]
async fn pod_lifecycle_leaves_nothing_behind() {
    let rt = kubelet_testkit::containerd();
    let runtime = rt.connect().await;
    let uid = unique_uid("lifecycle");
    let _guard = rt.pod_guard(&uid);
    let logs = rt.temp_dir("lifecycle-logs");
    let pod = sandbox_config(&rt, &uid, logs.path());

    let sandbox = runtime.run_pod_sandbox(pod.clone(), "").await.unwrap();
    let sandbox_status = runtime.pod_sandbox_status(&sandbox).await.unwrap();
    assert_eq!(sandbox_status.state(), PodSandboxState::SandboxReady);

    let echo = container_config(&uid, "echo", "echo hello-from-smoke");
    let echo_id = runtime
        .create_container(&sandbox, echo, pod.clone())
        .await
        .unwrap();
    runtime.start_container(&echo_id).await.unwrap();
    assert_eq!(wait_until_exited(&runtime, &echo_id).await, 0);
    let log = wait_for_log(&logs.path().join("echo/0.log"), "hello-from-smoke").await;
    let line = log.lines().next().unwrap_or_default();
    assert!(
        line.ends_with(" stdout F hello-from-smoke"),
        "CRI log line: {log:?}"
    );

    let sleeper = container_config(&uid, "sleeper", "exec sleep 3600");
    let sleeper_id = runtime
        .create_container(&sandbox, sleeper, pod.clone())
        .await
        .unwrap();
    runtime.start_container(&sleeper_id).await.unwrap();
    let memory_cgroup = Path::new("/sys/fs/cgroup/memory")
        .join(rt.pod_cgroup_parent(&uid).trim_start_matches('/'))
        .join(&sleeper_id);
    assert!(
        memory_cgroup.is_dir(),
        "{} is missing",
        memory_cgroup.display()
    );

    let cmd = ["/bin/sh", "-c", "echo exec-out; echo exec-err >&2"];
    let exec = runtime
        .exec_sync(
            &sleeper_id,
            cmd.map(String::from).to_vec(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(exec.exit_code, 0);
    assert_eq!(exec.stdout, b"exec-out\n");
    assert_eq!(exec.stderr, b"exec-err\n");

    let containers = rt.pod_containers(&uid).await.unwrap();
    assert_eq!(containers.len(), 2, "{containers:?}");

    runtime.stop_pod_sandbox(&sandbox).await.unwrap();
    runtime.remove_pod_sandbox(&sandbox).await.unwrap();
    assert_eq!(rt.pod_sandboxes(&uid).await.unwrap(), vec![]);
    assert_eq!(rt.pod_containers(&uid).await.unwrap(), vec![]);
    assert!(matches!(
        runtime.pod_sandbox_status(&sandbox).await,
        Err(CriError::NotFound { .. })
    ));

    rt.remove_pod_cgroups(&uid).unwrap();
    assert!(!memory_cgroup.parent().unwrap().exists());
}

#[tokio::test]
async fn container_events_are_unimplemented_in_containerd_1_6() {
    let runtime = kubelet_testkit::containerd().connect().await;
    match runtime.container_events().await {
        Err(err) => assert!(err.is_unimplemented(), "{err}"),
        Ok(_) => panic!("GetContainerEvents answered; containerd 1.6 does not implement it"),
    }
}

#[tokio::test]
async fn connecting_to_a_missing_socket_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}/missing.sock", dir.path().display());
    let err = RemoteRuntime::connect(&endpoint, "", Duration::from_secs(2))
        .await
        .unwrap_err();
    match &err {
        CriError::Connect {
            endpoint: named, ..
        } => assert_eq!(named, &endpoint),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("missing.sock"), "{err}");
}
