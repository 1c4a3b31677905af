//! Containers through runc and crun: create, start, logs, exec, stats, update, stop with a
//! grace period, exit codes and reasons, events, removal leaving nothing behind.

use super::{
    assert_clean, container, create, pod, remove_pod, run_pod, start, status, stop_pod, wait_exited,
};
use crate::fixture::Fixture;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use runtime_service::Runtime;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::{Code, Request};

async fn exec(
    rt: &Runtime,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<ExecSyncResponse, tonic::Status> {
    rt.exec_sync(Request::new(ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    }))
    .await
    .map(|r| r.into_inner())
}

async fn wait_log(path: &std::path::Path, wanted: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if wanted.iter().all(|w| text.contains(w)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} lacks {wanted:?}: {text:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn lifecycle_runc(fx: &Fixture) {
    lifecycle(fx, "runc");
}

pub fn lifecycle_crun(fx: &Fixture) {
    let unified =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    assert!(
        !unified.split_whitespace().any(|c| c == "hugetlb"),
        "crun refuses hybrid cgroups while hugetlb is on cgroup2: run scripts/prepare-cgroups.sh (as CI does)"
    );
    lifecycle(fx, "crun");
}

fn lifecycle(fx: &Fixture, handler: &str) {
    let name = format!("c-{handler}");
    let rt = fx.runtime(&name);
    fx.tokio.block_on(async {
        let mut events = rt
            .get_container_events(Request::new(GetEventsRequest {}))
            .await
            .expect("GetContainerEvents")
            .into_inner();
        let config = pod(fx, &name);
        let pod_id = run_pod(&rt, config.clone(), handler).await;
        let script = "echo hello-out; echo hello-err >&2; trap 'exit 3' TERM; while true; do sleep 0.1; done";
        let id = create(&rt, &pod_id, &config, container("app", &["sh", "-c", script])).await;
        let again = rt
            .create_container(Request::new(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(container("app", &["true"])),
                sandbox_config: Some(config.clone()),
            }))
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::AlreadyExists, "{again}");
        let mut missing = container("noimage", &["true"]);
        missing.image.as_mut().unwrap().image = "localhost/nosuch:1".into();
        let err = rt
            .create_container(Request::new(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(missing),
                sandbox_config: Some(config.clone()),
            }))
            .await
            .unwrap_err();
        assert!(err.message().contains("localhost/nosuch:1"), "{err}");

        let created = status(&rt, &id).await;
        assert_eq!(created.state, ContainerState::ContainerCreated as i32);
        assert!(created.image_ref.contains("sha256:"), "{created:?}");
        start(&rt, &id).await;
        let running = status(&rt, &id).await;
        assert_eq!(running.state, ContainerState::ContainerRunning as i32);
        assert!(running.started_at >= running.created_at && running.created_at > 0);
        let log_path = fx.log_dir(&name).join("app/0.log");
        assert_eq!(running.log_path, log_path.to_string_lossy());
        wait_log(&log_path, &[" stdout F hello-out\n", " stderr F hello-err\n"]).await;

        let out = exec(&rt, &id, &["cat", "/etc/hostname"], 10).await.expect("exec");
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{name}\n"));
        assert_eq!(exec(&rt, &id, &["sh", "-c", "exit 4"], 0).await.expect("exec").exit_code, 4);
        let started = Instant::now();
        let timeout = exec(&rt, &id, &["sleep", "10"], 1).await.unwrap_err();
        assert_eq!(timeout.code(), Code::DeadlineExceeded, "{timeout}");
        assert!(started.elapsed() < Duration::from_secs(5));

        let listed = rt
            .list_containers(Request::new(ListContainersRequest {
                filter: Some(ContainerFilter {
                    pod_sandbox_id: pod_id.clone(),
                    state: Some(ContainerStateValue { state: ContainerState::ContainerRunning as i32 }),
                    ..Default::default()
                }),
            }))
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);

        let stats = rt
            .container_stats(Request::new(ContainerStatsRequest { container_id: id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .stats
            .unwrap();
        assert!(stats.cpu.and_then(|c| c.usage_core_nano_seconds).is_some_and(|v| v.value > 0));
        assert!(stats.memory.and_then(|m| m.working_set_bytes).is_some_and(|v| v.value > 0));
        assert!(stats.writable_layer.is_some());

        let pod_stats = rt
            .list_pod_sandbox_stats(Request::new(ListPodSandboxStatsRequest {
                filter: Some(PodSandboxStatsFilter { id: pod_id.clone(), ..Default::default() }),
            }))
            .await
            .unwrap()
            .into_inner()
            .stats;
        let linux = pod_stats[0].linux.as_ref().expect("linux pod stats");
        assert_eq!(linux.containers.len(), 1);
        assert!(linux.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds).is_some_and(|v| v.value > 0));

        let limit = 64 << 20;
        rt.update_container_resources(Request::new(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(LinuxContainerResources { memory_limit_in_bytes: limit, ..Default::default() }),
            ..Default::default()
        }))
        .await
        .expect("UpdateContainerResources");
        let cgroup = format!(
            "/sys/fs/cgroup/memory{}/pod{}/{id}/memory.limit_in_bytes",
            fx.cgroup_base,
            config.metadata.as_ref().unwrap().uid
        );
        assert_eq!(std::fs::read_to_string(&cgroup).unwrap().trim(), limit.to_string());
        rt.reopen_container_log(Request::new(ReopenContainerLogRequest { container_id: id.clone() }))
            .await
            .expect("ReopenContainerLog");

        let stopping = Instant::now();
        rt.stop_container(Request::new(StopContainerRequest { container_id: id.clone(), timeout: 20 }))
            .await
            .expect("StopContainer");
        assert!(stopping.elapsed() < Duration::from_secs(10), "SIGTERM was trapped, no need for SIGKILL");
        let exited = status(&rt, &id).await;
        assert_eq!(exited.state, ContainerState::ContainerExited as i32);
        assert_eq!((exited.exit_code, exited.reason.as_str()), (3, "Error"));
        assert!(exited.finished_at >= exited.started_at);
        rt.stop_container(Request::new(StopContainerRequest { container_id: id.clone(), timeout: 1 }))
            .await
            .expect("stopping an exited container again");
        let err = rt
            .reopen_container_log(Request::new(ReopenContainerLogRequest { container_id: id.clone() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);

        rt.remove_container(Request::new(RemoveContainerRequest { container_id: id.clone() }))
            .await
            .expect("RemoveContainer");
        let err = rt
            .container_status(Request::new(ContainerStatusRequest { container_id: id.clone(), verbose: false }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);

        let mut seen = Vec::new();
        while seen.len() < 4 {
            let event = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .expect("an event in time")
                .expect("the stream goes on")
                .expect("an event");
            if event.container_id == id {
                seen.push(event.container_event_type);
            }
        }
        use ContainerEventType::*;
        assert_eq!(
            seen,
            [ContainerCreatedEvent, ContainerStartedEvent, ContainerStoppedEvent, ContainerDeletedEvent]
                .map(|e| e as i32)
        );
        stop_pod(&rt, &pod_id).await;
        remove_pod(&rt, &pod_id).await;
    });
    assert_clean(fx, &name);
}

pub fn exits(fx: &Fixture) {
    let rt = fx.runtime("exits");
    fx.tokio.block_on(async {
        let config = pod(fx, "exits");
        let pod_id = run_pod(&rt, config.clone(), "").await;
        let crash = create(
            &rt,
            &pod_id,
            &config,
            container("crash", &["sh", "-c", "exit 7"]),
        )
        .await;
        let done = create(&rt, &pod_id, &config, container("done", &["true"])).await;
        let sleeper = create(
            &rt,
            &pod_id,
            &config,
            container("sleeper", &["sleep", "1000"]),
        )
        .await;
        let never = create(
            &rt,
            &pod_id,
            &config,
            container("never", &["sleep", "1000"]),
        )
        .await;
        for id in [&crash, &done, &sleeper] {
            start(&rt, id).await;
        }
        let crashed = wait_exited(&rt, &crash).await;
        assert_eq!((crashed.exit_code, crashed.reason.as_str()), (7, "Error"));
        let completed = wait_exited(&rt, &done).await;
        assert_eq!(
            (completed.exit_code, completed.reason.as_str()),
            (0, "Completed")
        );

        // A timed-out exec leaves no zombie behind, even in a container whose init reaps
        // nothing (`sleep` here, `top` in critest).
        let err = exec(&rt, &sleeper, &["sleep", "4321"], 1)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
        let zombies = exec(
            &rt,
            &sleeper,
            &["sh", "-c", "ps -o stat,args | grep ^Z || true"],
            10,
        )
        .await
        .expect("exec ps");
        assert_eq!(
            String::from_utf8_lossy(&zombies.stdout),
            "",
            "no zombie left"
        );

        // StopPodSandbox kills what still runs (and what was never started).
        stop_pod(&rt, &pod_id).await;
        let killed = status(&rt, &sleeper).await;
        assert_eq!(
            (killed.state, killed.exit_code),
            (ContainerState::ContainerExited as i32, 137)
        );
        assert_eq!(
            status(&rt, &never).await.state,
            ContainerState::ContainerExited as i32
        );
        remove_pod(&rt, &pod_id).await;
        let left = rt
            .list_containers(Request::new(ListContainersRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert!(
            left.is_empty(),
            "RemovePodSandbox removes its containers: {left:?}"
        );
    });
    assert_clean(fx, "exits");
}

pub fn shared_pid_namespace(fx: &Fixture) {
    let rt = fx.runtime("shpid");
    fx.tokio.block_on(async {
        let mut config = pod(fx, "shpid");
        let options = config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
            .namespace_options
            .as_mut()
            .unwrap();
        options.pid = NamespaceMode::Pod as i32;
        let pod_id = run_pod(&rt, config.clone(), "").await;
        let a = create(&rt, &pod_id, &config, container("a", &["sleep", "1000"])).await;
        let b = create(&rt, &pod_id, &config, container("b", &["sleep", "1001"])).await;
        start(&rt, &a).await;
        start(&rt, &b).await;
        let init = exec(&rt, &a, &["cat", "/proc/1/cmdline"], 10)
            .await
            .expect("exec");
        assert!(
            String::from_utf8_lossy(&init.stdout).contains("catatonit"),
            "{init:?}"
        );
        let ps = exec(&rt, &a, &["ps", "-o", "args"], 10)
            .await
            .expect("exec");
        assert!(
            String::from_utf8_lossy(&ps.stdout).contains("sleep 1001"),
            "a sees b: {ps:?}"
        );
        stop_pod(&rt, &pod_id).await;
        remove_pod(&rt, &pod_id).await;
    });
    assert_clean(fx, "shpid");
}

/// A failing CreateContainer and a failing RunPodSandbox leave nothing behind, and their names
/// are free for the retry.
pub fn failures_roll_back(fx: &Fixture) {
    let rt = fx.runtime("fail");
    fx.tokio.block_on(async {
        let config = pod(fx, "fail");
        let pod_id = run_pod(&rt, config.clone(), "").await;
        let bad = container("bad", &["/nonexistent"]);
        let err = rt
            .create_container(Request::new(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(bad.clone()),
                sandbox_config: Some(config.clone()),
            }))
            .await
            .unwrap_err();
        assert!(err.message().contains("nonexistent"), "{err}");
        let listed = rt
            .list_containers(Request::new(ListContainersRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert!(listed.is_empty(), "{listed:?}");
        let bundles = std::fs::read_dir(fx.path().join("fail/r/containers"))
            .unwrap()
            .count();
        assert_eq!(bundles, 0, "the failed container's bundle is gone");
        let good = create(&rt, &pod_id, &config, container("bad", &["true"])).await;
        rt.remove_container(Request::new(RemoveContainerRequest { container_id: good }))
            .await
            .unwrap();
        remove_pod(&rt, &pod_id).await;
    });
    drop(rt);
    assert_clean(fx, "fail");

    // A network whose plugin does not exist: RunPodSandbox fails after pinning namespaces.
    let conf_dir = fx.path().join("broken.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conflist = r#"{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"nosuchplugin"}]}"#;
    std::fs::write(conf_dir.join("10-broken.conflist"), conflist).unwrap();
    let mut options = fx.options("failnet");
    options.cni_conf_dir = conf_dir;
    fx.tokio.block_on(async {
        let rt = Runtime::open(options).await.expect("open");
        let config = pod(fx, "failnet");
        let err = rt
            .run_pod_sandbox(Request::new(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .await
            .unwrap_err();
        assert!(err.message().contains("nosuchplugin"), "{err}");
        let err = rt
            .run_pod_sandbox(Request::new(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            }))
            .await
            .unwrap_err();
        assert!(
            !err.message().contains("reserved"),
            "the name was released: {err}"
        );
        let pods = rt
            .list_pod_sandbox(Request::new(ListPodSandboxRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .items;
        assert!(pods.is_empty(), "{pods:?}");
    });
    assert_clean(fx, "failnet");
}

/// Pods created, started and removed concurrently: per-object locks, no shared state mixed up.
pub fn burst(fx: &Fixture) {
    let rt = fx.runtime("burst");
    fx.tokio.block_on(async {
        let pods = (0..6).map(|n| {
            let rt = rt.clone();
            let config = pod(fx, &format!("burst{n}"));
            async move {
                let pod_id = run_pod(&rt, config.clone(), "").await;
                let id = create(&rt, &pod_id, &config, container("app", &["sleep", "1000"])).await;
                start(&rt, &id).await;
                assert_eq!(
                    status(&rt, &id).await.state,
                    ContainerState::ContainerRunning as i32
                );
                (pod_id, id)
            }
        });
        let started = futures::future::join_all(pods).await;
        let ips: std::collections::HashSet<String> = futures::future::join_all(
            started
                .iter()
                .map(|(pod_id, _)| super::sandbox_status(&rt, pod_id)),
        )
        .await
        .into_iter()
        .map(|s| s.network.unwrap().ip)
        .collect();
        assert_eq!(
            ips.len(),
            started.len(),
            "every pod has its own IP: {ips:?}"
        );
        futures::future::join_all(started.iter().map(|(pod_id, _)| async {
            stop_pod(&rt, pod_id).await;
            remove_pod(&rt, pod_id).await;
        }))
        .await;
    });
    assert_clean(fx, "burst");
}
