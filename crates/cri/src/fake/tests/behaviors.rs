use super::support::{
    IMAGE, container_config, fake_with_pod, sandbox_config, start, state, status,
};
use crate::RuntimeService;
use crate::api::ContainerState;
use crate::fake::Behavior;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn exit_after_ends_the_container_at_its_deadline() {
    let (fake, sandbox) = fake_with_pod("web").await;
    fake.set_behavior(
        "job",
        Behavior::ExitAfter {
            after: Duration::from_secs(5),
            code: 3,
        },
    );
    let job = start(&fake, &sandbox, "web", "job").await;

    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert_eq!(state(&fake, &job).await, ContainerState::ContainerRunning);
    tokio::time::advance(Duration::from_secs(60)).await;
    let exited = status(&fake, &job).await;
    assert_eq!(exited.state(), ContainerState::ContainerExited);
    assert_eq!((exited.exit_code, exited.reason.as_str()), (3, "Error"));
    assert_eq!(
        exited.finished_at - exited.started_at,
        5_000_000_000,
        "finished at the deadline, not when noticed"
    );
}

#[tokio::test(start_paused = true)]
async fn exit_zero_is_completed_and_oom_is_oom_killed() {
    let (fake, sandbox) = fake_with_pod("web").await;
    fake.set_behavior(
        "ok",
        Behavior::ExitAfter {
            after: Duration::ZERO,
            code: 0,
        },
    );
    fake.set_behavior(
        "hog",
        Behavior::OomAfter {
            after: Duration::from_secs(1),
        },
    );
    let ok = start(&fake, &sandbox, "web", "ok").await;
    let hog = start(&fake, &sandbox, "web", "hog").await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let ok = status(&fake, &ok).await;
    assert_eq!((ok.exit_code, ok.reason.as_str()), (0, "Completed"));
    let hog = status(&fake, &hog).await;
    assert_eq!(hog.state(), ContainerState::ContainerExited);
    assert_eq!((hog.exit_code, hog.reason.as_str()), (137, "OOMKilled"));
}

#[tokio::test(start_paused = true)]
async fn fail_start_leaves_a_start_error_and_fail_create_leaves_nothing() {
    let (fake, sandbox) = fake_with_pod("web").await;
    fake.set_behavior(
        "bad",
        Behavior::FailStart("exec: \"nope\": not found".into()),
    );
    fake.set_behavior("worse", Behavior::FailCreate("mount denied".into()));

    let bad = fake
        .create_container(
            &sandbox,
            container_config("bad", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect("create succeeds");
    let error = fake.start_container(&bad).await.expect_err("start fails");
    assert!(
        error.to_string().contains("exec: \"nope\": not found"),
        "{error}"
    );
    let failed = status(&fake, &bad).await;
    assert_eq!(failed.state(), ContainerState::ContainerExited);
    assert_eq!(
        (failed.exit_code, failed.reason.as_str()),
        (128, "StartError")
    );
    assert!(failed.message.contains("exec: \"nope\": not found"));

    let error = fake
        .create_container(
            &sandbox,
            container_config("worse", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect_err("create fails");
    assert!(error.to_string().contains("mount denied"), "{error}");
    assert_eq!(fake.list_containers(None).await.expect("list").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn ignore_term_waits_out_the_grace_period_then_is_killed() {
    let (fake, sandbox) = fake_with_pod("web").await;
    fake.set_behavior("stubborn", Behavior::IgnoreTerm);
    let stubborn = start(&fake, &sandbox, "web", "stubborn").await;

    let began = Instant::now();
    fake.stop_container(&stubborn, Duration::from_secs(30))
        .await
        .expect("stop");
    assert_eq!(began.elapsed(), Duration::from_secs(30));
    let killed = status(&fake, &stubborn).await;
    assert_eq!((killed.exit_code, killed.reason.as_str()), (137, "Error"));

    fake.set_behavior("stubborn2", Behavior::IgnoreTerm);
    let other = start(&fake, &sandbox, "web", "stubborn2").await;
    let began = Instant::now();
    fake.stop_container(&other, Duration::ZERO)
        .await
        .expect("stop");
    assert_eq!(began.elapsed(), Duration::ZERO);
    assert_eq!(status(&fake, &other).await.exit_code, 137);
}

#[tokio::test(start_paused = true)]
async fn a_behaviour_applies_to_containers_started_after_it_is_set() {
    let (fake, sandbox) = fake_with_pod("web").await;
    fake.set_behavior(
        "app",
        Behavior::ExitAfter {
            after: Duration::from_secs(1),
            code: 1,
        },
    );
    let crashing = start(&fake, &sandbox, "web", "app").await;
    fake.set_behavior("app", Behavior::RunForever);
    let mut restart = container_config("app", IMAGE);
    restart.metadata.as_mut().expect("metadata").attempt = 1;
    let restarted = fake
        .create_container(&sandbox, restart, sandbox_config("web"))
        .await
        .expect("create");
    fake.start_container(&restarted).await.expect("start");

    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        state(&fake, &crashing).await,
        ContainerState::ContainerExited
    );
    assert_eq!(
        state(&fake, &restarted).await,
        ContainerState::ContainerRunning
    );
    assert_eq!(fake.container_id("app"), Some(restarted));
}

#[tokio::test(start_paused = true)]
async fn exit_container_ends_a_running_container_now() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let app = start(&fake, &sandbox, "web", "app").await;
    tokio::time::advance(Duration::from_secs(3)).await;
    fake.exit_container(&app, 42);
    let exited = status(&fake, &app).await;
    assert_eq!((exited.exit_code, exited.reason.as_str()), (42, "Error"));
    assert_eq!(exited.finished_at - exited.started_at, 3_000_000_000);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "no running container")]
async fn exit_container_on_an_exited_container_is_a_test_bug() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let app = start(&fake, &sandbox, "web", "app").await;
    fake.exit_container(&app, 0);
    fake.exit_container(&app, 0);
}
