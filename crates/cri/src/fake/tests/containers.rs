use super::support::{
    IMAGE, container_config, fake_with_pod, sandbox_config, start, state, status,
};
use crate::api::{
    ContainerFilter, ContainerState, ContainerStateValue, ContainerStatsFilter, ExecSyncResponse,
};
use crate::{ImageService, RuntimeService};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn create_needs_a_known_ready_sandbox_metadata_and_the_image() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let pod = sandbox_config("web");

    let error = fake
        .create_container("feedface", container_config("app", IMAGE), pod.clone())
        .await
        .expect_err("unknown sandbox");
    assert!(error.is_not_found(), "{error}");
    assert!(
        error
            .to_string()
            .contains("failed to find sandbox id \"feedface\""),
        "{error}"
    );

    let error = fake
        .create_container(&sandbox, container_config("app", "nginx:1.27"), pod.clone())
        .await
        .expect_err("image absent");
    assert!(error.is_not_found(), "{error}");
    assert!(
        error
            .to_string()
            .contains("failed to resolve image \"docker.io/library/nginx:1.27\""),
        "{error}"
    );

    let mut no_metadata = container_config("app", IMAGE);
    no_metadata.metadata = None;
    let error = fake
        .create_container(&sandbox, no_metadata, pod.clone())
        .await
        .expect_err("no metadata");
    assert!(
        error.to_string().contains("must include metadata"),
        "{error}"
    );

    fake.stop_pod_sandbox(&sandbox).await.expect("stop");
    let error = fake
        .create_container(&sandbox, container_config("app", IMAGE), pod)
        .await
        .expect_err("sandbox not ready");
    assert!(
        error.to_string().contains("no running task found"),
        "{error}"
    );
    assert!(fake.list_containers(None).await.expect("list").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_container_goes_created_running_exited_removed() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let id = fake
        .create_container(
            &sandbox,
            container_config("app", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect("create");
    let created = status(&fake, &id).await;
    assert_eq!(created.state(), ContainerState::ContainerCreated);
    assert!(created.created_at > 0);
    assert_eq!((created.started_at, created.finished_at), (0, 0));

    tokio::time::advance(Duration::from_secs(1)).await;
    fake.start_container(&id).await.expect("start");
    let running = status(&fake, &id).await;
    assert_eq!(running.state(), ContainerState::ContainerRunning);
    assert_eq!(running.started_at - running.created_at, 1_000_000_000);

    let error = fake
        .start_container(&id)
        .await
        .expect_err("already running");
    assert!(
        error
            .to_string()
            .contains("container is in CONTAINER_RUNNING state"),
        "{error}"
    );

    tokio::time::advance(Duration::from_secs(2)).await;
    fake.stop_container(&id, Duration::from_secs(30))
        .await
        .expect("stop");
    let exited = status(&fake, &id).await;
    assert_eq!(exited.state(), ContainerState::ContainerExited);
    assert_eq!((exited.exit_code, exited.reason.as_str()), (0, "Completed"));
    assert_eq!(exited.finished_at - exited.started_at, 2_000_000_000);
    fake.stop_container(&id, Duration::from_secs(30))
        .await
        .expect("stop again is fine");

    let error = fake.start_container(&id).await.expect_err("exited");
    assert!(
        error
            .to_string()
            .contains("container is in CONTAINER_EXITED state"),
        "{error}"
    );

    fake.remove_container(&id).await.expect("remove");
    assert!(
        fake.container_status(&id)
            .await
            .expect_err("gone")
            .is_not_found()
    );
    fake.remove_container(&id)
        .await
        .expect("removing twice is fine");
    assert!(
        fake.stop_container(&id, Duration::ZERO)
            .await
            .expect_err("gone")
            .is_not_found()
    );
}

#[tokio::test(start_paused = true)]
async fn status_reports_what_containerd_reports() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let image_id = fake.add_image("busybox");
    let id = start(&fake, &sandbox, "web", "app").await;
    let status = status(&fake, &id).await;
    let config = container_config("app", IMAGE);
    assert_eq!(status.id, id);
    assert_eq!(status.metadata, config.metadata);
    assert_eq!(status.labels, config.labels);
    assert_eq!(status.annotations, config.annotations);
    assert_eq!(
        status.log_path,
        "/var/log/pods/default_web_uid-web/app/0.log"
    );
    assert_eq!(
        status.image.map(|i| i.image).as_deref(),
        Some("docker.io/library/busybox:latest")
    );
    assert!(
        status
            .image_ref
            .starts_with("docker.io/library/busybox@sha256:"),
        "{}",
        status.image_ref
    );
    assert_eq!(status.image_id, image_id);

    let listed = fake.list_containers(None).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].image.as_ref().map(|i| i.image.as_str()),
        Some(IMAGE)
    );
    assert_eq!(listed[0].image_ref, image_id);
    assert_eq!(listed[0].pod_sandbox_id, sandbox);
    assert_eq!(listed[0].state(), ContainerState::ContainerRunning);
}

#[tokio::test(start_paused = true)]
async fn a_container_name_is_reserved_per_attempt_until_removed() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let first = start(&fake, &sandbox, "web", "app").await;
    let error = fake
        .create_container(
            &sandbox,
            container_config("app", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect_err("same attempt");
    assert!(
        error
            .to_string()
            .contains("failed to reserve container name \"k8s_app_web_default_uid-web_0\""),
        "{error}"
    );
    let mut restart = container_config("app", IMAGE);
    restart.metadata.as_mut().expect("metadata").attempt = 1;
    fake.create_container(&sandbox, restart, sandbox_config("web"))
        .await
        .expect("attempt 1");
    fake.remove_container(&first).await.expect("remove");
    fake.create_container(
        &sandbox,
        container_config("app", IMAGE),
        sandbox_config("web"),
    )
    .await
    .expect("attempt 0 is free again");
}

#[tokio::test(start_paused = true)]
async fn stop_leaves_created_containers_and_remove_kills_running_ones() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let created = fake
        .create_container(
            &sandbox,
            container_config("init", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect("create");
    fake.stop_container(&created, Duration::from_secs(1))
        .await
        .expect("stop");
    assert_eq!(
        state(&fake, &created).await,
        ContainerState::ContainerCreated
    );

    let running = start(&fake, &sandbox, "web", "app").await;
    fake.remove_container(&running).await.expect("remove");
    let remaining: Vec<String> = fake
        .list_containers(None)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(remaining, [created]);
}

#[tokio::test(start_paused = true)]
async fn list_honours_every_filter_field() {
    let (fake, web) = fake_with_pod("web").await;
    let db = fake
        .run_pod_sandbox(sandbox_config("db"), "")
        .await
        .expect("db");
    let app = start(&fake, &web, "web", "app").await;
    let sidecar = fake
        .create_container(
            &web,
            container_config("sidecar", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect("create");
    let postgres = start(&fake, &db, "db", "postgres").await;

    let ids = async |filter: ContainerFilter| -> Vec<String> {
        fake.list_containers(Some(filter))
            .await
            .expect("list")
            .into_iter()
            .map(|c| c.id)
            .collect()
    };
    let in_web = ContainerFilter {
        pod_sandbox_id: web.clone(),
        ..Default::default()
    };
    assert_eq!(ids(in_web.clone()).await, [app.clone(), sidecar.clone()]);
    let running_in_web = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        }),
        ..in_web
    };
    assert_eq!(ids(running_in_web).await, [app.as_str()]);
    let by_label = ContainerFilter {
        label_selector: HashMap::from([(
            "io.kubernetes.container.name".to_string(),
            "postgres".to_string(),
        )]),
        ..Default::default()
    };
    assert_eq!(ids(by_label).await, [postgres.as_str()]);
    let by_id = ContainerFilter {
        id: sidecar[..10].to_string(),
        ..Default::default()
    };
    assert_eq!(ids(by_id).await, [sidecar]);
    assert_eq!(fake.list_containers(None).await.expect("all").len(), 3);

    let stats = fake
        .list_container_stats(Some(ContainerStatsFilter {
            pod_sandbox_id: web,
            ..Default::default()
        }))
        .await
        .expect("stats");
    assert_eq!(stats.len(), 1, "only running containers have stats");
    let attributes = stats[0].attributes.as_ref().expect("attributes");
    assert_eq!(attributes.id, app);
    assert!(
        stats[0]
            .memory
            .and_then(|m| m.working_set_bytes)
            .is_some_and(|b| b.value > 0)
    );
}

#[tokio::test(start_paused = true)]
async fn cpu_usage_grows_with_running_time() {
    let (fake, sandbox) = fake_with_pod("web").await;
    start(&fake, &sandbox, "web", "app").await;
    let cpu = async || {
        fake.list_container_stats(None).await.expect("stats")[0]
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map(|u| u.value)
            .expect("cpu")
    };
    let before = cpu().await;
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(cpu().await > before);
}

#[tokio::test(start_paused = true)]
async fn exec_answers_as_scripted_in_running_containers_only() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let app = start(&fake, &sandbox, "web", "app").await;
    let cmd = vec!["cat".to_string(), "/tmp/healthy".to_string()];
    let default = fake
        .exec_sync(&app, cmd.clone(), Duration::from_secs(1))
        .await
        .expect("exec");
    assert_eq!(default, ExecSyncResponse::default());

    let scripted = ExecSyncResponse {
        stdout: b"ok\n".to_vec(),
        stderr: Vec::new(),
        exit_code: 1,
    };
    fake.set_exec_result("app", scripted.clone());
    let answer = fake
        .exec_sync(&app, cmd.clone(), Duration::from_secs(1))
        .await
        .expect("exec");
    assert_eq!(answer, scripted);
    assert_eq!(
        fake.calls().last().map(String::as_str),
        Some("ExecSync app cat /tmp/healthy")
    );

    fake.reopen_container_log(&app)
        .await
        .expect("running: reopen works");
    fake.exit_container(&app, 2);
    let error = fake
        .exec_sync(&app, cmd, Duration::from_secs(1))
        .await
        .expect_err("exited");
    assert!(
        error
            .to_string()
            .contains("container is in CONTAINER_EXITED state"),
        "{error}"
    );
    let error = fake.reopen_container_log(&app).await.expect_err("exited");
    assert!(
        error.to_string().contains("container is not running"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_removed_image_stops_later_creates_but_not_running_containers() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let app = start(&fake, &sandbox, "web", "app").await;
    fake.remove_image(&crate::api::ImageSpec {
        image: IMAGE.to_string(),
        ..Default::default()
    })
    .await
    .expect("remove image");
    assert_eq!(state(&fake, &app).await, ContainerState::ContainerRunning);
    let error = fake
        .create_container(
            &sandbox,
            container_config("other", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect_err("image gone");
    assert!(error.is_not_found(), "{error}");
}
