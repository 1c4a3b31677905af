//! Restart recovery: a runtime dropped while containers run comes back with them, running with
//! the same pid or exited with the code they exited with while it was gone.

use super::{
    assert_clean, container, create, pod, remove_pod, run_pod, start, status, wait_exited,
};
use crate::fixture::Fixture;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use runtime_service::Runtime;
use std::time::Duration;
use tonic::{Code, Request};

async fn pid(rt: &Runtime, id: &str) -> i64 {
    let r = rt
        .container_status(Request::new(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }))
        .await
        .expect("ContainerStatus")
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&r.info["info"]).expect("info is JSON");
    info["pid"].as_i64().expect("a pid")
}

pub fn running_container(fx: &Fixture) {
    let rt = fx.runtime("rec");
    let config = pod(fx, "rec");
    let (pod_id, long, short, before) = fx.tokio.block_on(async {
        let pod_id = run_pod(&rt, config.clone(), "").await;
        let long = create(&rt, &pod_id, &config, container("long", &["sleep", "1000"])).await;
        let short = create(
            &rt,
            &pod_id,
            &config,
            container("short", &["sh", "-c", "sleep 1; exit 5"]),
        )
        .await;
        start(&rt, &long).await;
        start(&rt, &short).await;
        let before = pid(&rt, &long).await;
        (pod_id, long, short, before)
    });
    drop(rt);
    // `short` exits while no runtime watches it.
    std::thread::sleep(Duration::from_secs(2));
    fx.tokio.block_on(async {
        let rt = Runtime::open(fx.options("rec")).await.expect("reopen");
        let running = status(&rt, &long).await;
        assert_eq!(running.state, ContainerState::ContainerRunning as i32);
        assert_eq!(
            pid(&rt, &long).await,
            before,
            "the same process, not a restart"
        );
        let exited = status(&rt, &short).await;
        assert_eq!(
            (exited.state, exited.exit_code),
            (ContainerState::ContainerExited as i32, 5)
        );
        let again = rt
            .create_container(Request::new(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(container("long", &["true"])),
                sandbox_config: Some(config.clone()),
            }))
            .await
            .unwrap_err();
        assert_eq!(
            again.code(),
            Code::AlreadyExists,
            "names are reserved again: {again}"
        );

        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(before as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the container");
        let killed = wait_exited(&rt, &long).await;
        assert_eq!((killed.exit_code, killed.reason.as_str()), (137, "Error"));
        remove_pod(&rt, &pod_id).await;
    });
    assert_clean(fx, "rec");
}

/// A runtime that died inside CreateContainer and RunPodSandbox (records still Creating) and
/// between removing a record and its directory: reopening rolls back and removes all of it.
pub fn cut_off_creates(fx: &Fixture) {
    let rt = fx.runtime("cut");
    let config = pod(fx, "cut");
    let half_pod_config = pod(fx, "cut-half");
    let (pod_id, half, half_pod) = fx.tokio.block_on(async {
        let pod_id = run_pod(&rt, config.clone(), "").await;
        let half = create(&rt, &pod_id, &config, container("half", &["sleep", "1000"])).await;
        let half_pod = run_pod(&rt, half_pod_config, "").await;
        (pod_id, half, half_pod)
    });
    drop(rt);
    let base = fx.path().join("cut/r");
    for (kind, id, phase) in [
        ("containers", &half, "Created"),
        ("sandboxes", &half_pod, "Ready"),
    ] {
        let path = base.join("records").join(kind).join(format!("{id}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let from = format!("\"phase\":\"{phase}\"");
        assert!(text.contains(&from), "{text}");
        std::fs::write(&path, text.replace(&from, "\"phase\":\"Creating\"")).unwrap();
    }
    let orphan = base.join("containers").join("0".repeat(64));
    std::fs::create_dir_all(orphan.join("rootfs")).unwrap();
    std::fs::write(base.join("records/containers/corrupt.json"), b"{not json").unwrap();

    fx.tokio.block_on(async {
        let rt = Runtime::open(fx.options("cut")).await.expect("reopen");
        let err = rt
            .container_status(Request::new(ContainerStatusRequest {
                container_id: half.clone(),
                verbose: false,
            }))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::NotFound,
            "the cut-off container is rolled back"
        );
        let err = rt
            .pod_sandbox_status(Request::new(PodSandboxStatusRequest {
                pod_sandbox_id: half_pod.clone(),
                verbose: false,
            }))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::NotFound,
            "the cut-off sandbox is rolled back"
        );
        assert!(!orphan.exists(), "a directory no record owns is removed");
        assert!(
            base.join("records/containers/quarantine/corrupt.json")
                .exists()
        );
        // The rolled-back container's name is free again.
        let again = create(&rt, &pod_id, &config, container("half", &["true"])).await;
        assert_ne!(again, half);
        remove_pod(&rt, &pod_id).await;
    });
    let _ = std::fs::remove_dir_all(base.join("records/containers/quarantine"));
    assert_clean(fx, "cut");
}

/// The runtime served by a process of its own, killed with SIGKILL while its pod runs: a new
/// runtime on the same dirs finds the containers as they are, restarting none.
pub fn after_kill_9(fx: &Fixture) {
    use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;

    // Images go in first; the served runtime then opens the same store.
    drop(fx.runtime("kill9"));
    let socket = fx.path().join("kill9/cri.sock");
    let mut child = fx.spawn_served("kill9", &socket);
    let config = pod(fx, "kill9");
    let (pod_id, ids, pids) = fx.tokio.block_on(async {
        let mut client = RuntimeServiceClient::new(crate::fixture::connect(&socket).await);
        let pod_id = client
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let (mut ids, mut pids) = (Vec::new(), Vec::new());
        for name in ["one", "two"] {
            let id = client
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod_id.clone(),
                    config: Some(container(name, &["sleep", "1000"])),
                    sandbox_config: Some(config.clone()),
                })
                .await
                .expect("CreateContainer")
                .into_inner()
                .container_id;
            client
                .start_container(StartContainerRequest {
                    container_id: id.clone(),
                })
                .await
                .expect("StartContainer");
            let status = client
                .container_status(ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: true,
                })
                .await
                .expect("ContainerStatus")
                .into_inner();
            let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
            pids.push(info["pid"].as_i64().unwrap());
            ids.push(id);
        }
        (pod_id, ids, pids)
    });
    child.kill().expect("SIGKILL the runtime");
    child.wait().expect("reap it");

    fx.tokio.block_on(async {
        let rt = Runtime::open(fx.options("kill9"))
            .await
            .expect("reopen after kill -9");
        assert_eq!(
            super::sandbox_status(&rt, &pod_id).await.state,
            PodSandboxState::SandboxReady as i32
        );
        for (id, before) in ids.iter().zip(&pids) {
            assert_eq!(
                status(&rt, id).await.state,
                ContainerState::ContainerRunning as i32
            );
            assert_eq!(pid(&rt, id).await, *before, "not restarted");
        }
        remove_pod(&rt, &pod_id).await;
    });
    assert_clean(fx, "kill9");
}
