use super::support::{IMAGE, container_config, fake_with_pod, sandbox_config, start, state};
use crate::RuntimeService;
use crate::api::{
    ContainerState, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode,
    NamespaceOption, PodSandboxFilter, PodSandboxState, PodSandboxStateValue,
};
use crate::fake::FakeRuntime;
use std::collections::HashMap;

#[tokio::test(start_paused = true)]
async fn a_new_sandbox_is_ready_with_its_config_and_the_next_ip() {
    let (fake, first) = fake_with_pod("web").await;
    let second = fake
        .run_pod_sandbox(sandbox_config("db"), "runc")
        .await
        .expect("second sandbox");
    assert_eq!(first.len(), 64);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(first, second);

    let status = fake.pod_sandbox_status(&first).await.expect("status");
    assert_eq!(status.state(), PodSandboxState::SandboxReady);
    assert_eq!(status.metadata, sandbox_config("web").metadata);
    assert_eq!(status.labels, sandbox_config("web").labels);
    assert_eq!(status.annotations, sandbox_config("web").annotations);
    assert!(status.created_at > 0);
    assert_eq!(status.network.expect("network").ip, "10.88.0.2");
    let second_status = fake.pod_sandbox_status(&second).await.expect("status");
    assert_eq!(second_status.network.expect("network").ip, "10.88.0.3");
    assert_eq!(second_status.runtime_handler, "runc");
}

#[tokio::test(start_paused = true)]
async fn host_network_pods_get_no_ip() {
    let fake = FakeRuntime::new();
    let mut config = sandbox_config("node-exporter");
    config.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = fake.run_pod_sandbox(config, "").await.expect("sandbox");
    let status = fake.pod_sandbox_status(&id).await.expect("status");
    assert_eq!(status.network.expect("network").ip, "");
    let options = status
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options);
    assert_eq!(options.map(|o| o.network), Some(NamespaceMode::Node as i32));
}

#[tokio::test(start_paused = true)]
async fn a_sandbox_name_is_reserved_until_the_sandbox_is_removed() {
    let (fake, first) = fake_with_pod("web").await;
    let error = fake
        .run_pod_sandbox(sandbox_config("web"), "")
        .await
        .expect_err("same name and attempt");
    assert!(
        error
            .to_string()
            .contains("failed to reserve sandbox name \"k8s_POD_web_default_uid-web_0\""),
        "{error}"
    );
    let mut next_attempt = sandbox_config("web");
    next_attempt.metadata.as_mut().expect("metadata").attempt = 1;
    fake.run_pod_sandbox(next_attempt, "")
        .await
        .expect("attempt 1 is a new name");

    fake.stop_pod_sandbox(&first).await.expect("stop");
    fake.remove_pod_sandbox(&first).await.expect("remove");
    fake.run_pod_sandbox(sandbox_config("web"), "")
        .await
        .expect("the name is free again");
}

#[tokio::test(start_paused = true)]
async fn unknown_runtime_handlers_and_missing_metadata_are_refused() {
    let fake = FakeRuntime::new();
    let error = fake
        .run_pod_sandbox(sandbox_config("web"), "kata")
        .await
        .expect_err("unknown handler");
    assert!(
        error
            .to_string()
            .contains("no runtime for \"kata\" is configured"),
        "{error}"
    );
    let mut config = sandbox_config("web");
    config.metadata = None;
    let error = fake
        .run_pod_sandbox(config, "")
        .await
        .expect_err("no metadata");
    assert!(
        error.to_string().contains("must include metadata"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_kills_running_containers_and_tears_down_the_network() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let running = start(&fake, &sandbox, "web", "app").await;
    let created = fake
        .create_container(
            &sandbox,
            container_config("sidecar", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect("create");

    fake.stop_pod_sandbox(&sandbox).await.expect("stop");
    fake.stop_pod_sandbox(&sandbox)
        .await
        .expect("stop is idempotent");

    let status = fake.pod_sandbox_status(&sandbox).await.expect("status");
    assert_eq!(status.state(), PodSandboxState::SandboxNotready);
    assert_eq!(status.network.expect("network").ip, "");
    let killed = fake.container_status(&running).await.expect("status");
    assert_eq!(killed.state(), ContainerState::ContainerExited);
    assert_eq!((killed.exit_code, killed.reason.as_str()), (137, "Error"));
    assert_eq!(
        state(&fake, &created).await,
        ContainerState::ContainerCreated
    );

    let error = fake
        .stop_pod_sandbox("0123")
        .await
        .expect_err("unknown sandbox");
    assert!(error.is_not_found(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn remove_takes_the_containers_along_and_unknown_ids_are_fine() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let app = start(&fake, &sandbox, "web", "app").await;
    fake.remove_pod_sandbox(&sandbox)
        .await
        .expect("remove stops it first");
    assert!(fake.list_pod_sandbox(None).await.expect("list").is_empty());
    assert!(fake.list_containers(None).await.expect("list").is_empty());
    let error = fake.container_status(&app).await.expect_err("gone");
    assert!(error.is_not_found(), "{error}");
    fake.remove_pod_sandbox(&sandbox)
        .await
        .expect("removing twice is fine");
}

#[tokio::test(start_paused = true)]
async fn kill_sandbox_is_a_crashed_pause_container() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let app = start(&fake, &sandbox, "web", "app").await;
    fake.kill_sandbox(&sandbox);
    let status = fake.pod_sandbox_status(&sandbox).await.expect("status");
    assert_eq!(status.state(), PodSandboxState::SandboxNotready);
    assert_eq!(status.network.expect("network").ip, "10.88.0.2");
    assert_eq!(state(&fake, &app).await, ContainerState::ContainerRunning);
    let error = fake
        .create_container(
            &sandbox,
            container_config("late", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect_err("not ready");
    assert!(
        error.to_string().contains("no running task found"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn list_honours_id_state_and_label_filters_in_creation_order() {
    let (fake, web) = fake_with_pod("web").await;
    let db = fake
        .run_pod_sandbox(sandbox_config("db"), "")
        .await
        .expect("db");
    fake.stop_pod_sandbox(&db).await.expect("stop");

    let ids = |items: Vec<crate::api::PodSandbox>| -> Vec<String> {
        items.into_iter().map(|s| s.id).collect()
    };
    assert_eq!(
        ids(fake.list_pod_sandbox(None).await.expect("all")),
        [web.clone(), db.clone()]
    );
    let by_prefix = PodSandboxFilter {
        id: db[..12].to_string(),
        ..Default::default()
    };
    assert_eq!(
        ids(fake.list_pod_sandbox(Some(by_prefix)).await.expect("id")),
        [db.as_str()]
    );
    let ready = PodSandboxFilter {
        state: Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxReady as i32,
        }),
        ..Default::default()
    };
    assert_eq!(
        ids(fake.list_pod_sandbox(Some(ready)).await.expect("state")),
        [web.as_str()]
    );
    let labelled = PodSandboxFilter {
        label_selector: HashMap::from([("io.kubernetes.pod.name".to_string(), "db".to_string())]),
        ..Default::default()
    };
    let listed = fake.list_pod_sandbox(Some(labelled)).await.expect("labels");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, db);
    assert_eq!(listed[0].state(), PodSandboxState::SandboxNotready);
    assert_eq!(listed[0].annotations, sandbox_config("db").annotations);
    let nothing = PodSandboxFilter {
        label_selector: HashMap::from([("io.kubernetes.pod.name".to_string(), "x".to_string())]),
        ..Default::default()
    };
    assert!(
        fake.list_pod_sandbox(Some(nothing))
            .await
            .expect("none")
            .is_empty()
    );
}
