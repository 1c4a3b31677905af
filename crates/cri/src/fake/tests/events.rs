use super::support::{IMAGE, container_config, fake_with_pod, sandbox_config, start};
use crate::RuntimeService;
use crate::api::{ContainerEventResponse, ContainerEventType, ContainerState, PodSandboxState};
use crate::fake::{Behavior, FakeRuntime};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::time::Duration;

type Events = BoxStream<'static, crate::Result<ContainerEventResponse>>;

async fn next(events: &mut Events) -> ContainerEventResponse {
    events
        .next()
        .await
        .expect("the stream stays open")
        .expect("no stream error")
}

fn kind(event: &ContainerEventResponse) -> ContainerEventType {
    event.container_event_type()
}

#[tokio::test(start_paused = true)]
async fn without_events_the_rpc_is_unimplemented_like_containerd_1_6() {
    let fake = FakeRuntime::new();
    let error = fake.container_events().await.err().expect("unimplemented");
    assert!(error.is_unimplemented(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_reported_with_the_pod_status() {
    let fake = FakeRuntime::new();
    fake.add_image(IMAGE);
    fake.enable_events();
    let mut events = fake.container_events().await.expect("events");

    let sandbox = fake
        .run_pod_sandbox(sandbox_config("web"), "")
        .await
        .expect("sandbox");
    for expected in [
        ContainerEventType::ContainerCreatedEvent,
        ContainerEventType::ContainerStartedEvent,
    ] {
        let event = next(&mut events).await;
        assert_eq!(
            (event.container_id.as_str(), kind(&event)),
            (sandbox.as_str(), expected)
        );
    }

    let app = fake
        .create_container(
            &sandbox,
            container_config("app", IMAGE),
            sandbox_config("web"),
        )
        .await
        .expect("create");
    let created = next(&mut events).await;
    assert_eq!(created.container_id, app);
    assert_eq!(kind(&created), ContainerEventType::ContainerCreatedEvent);
    let pod = created.pod_sandbox_status.as_ref().expect("sandbox status");
    assert_eq!(pod.id, sandbox);
    assert_eq!(pod.state(), PodSandboxState::SandboxReady);
    assert_eq!(created.containers_statuses.len(), 1);
    assert_eq!(
        created.containers_statuses[0].state(),
        ContainerState::ContainerCreated
    );
    assert!(created.created_at > 0);

    fake.start_container(&app).await.expect("start");
    let started = next(&mut events).await;
    assert_eq!(kind(&started), ContainerEventType::ContainerStartedEvent);
    assert_eq!(
        started.containers_statuses[0].state(),
        ContainerState::ContainerRunning
    );

    fake.stop_container(&app, Duration::from_secs(1))
        .await
        .expect("stop");
    let stopped = next(&mut events).await;
    assert_eq!(kind(&stopped), ContainerEventType::ContainerStoppedEvent);
    assert_eq!(
        stopped.containers_statuses[0].state(),
        ContainerState::ContainerExited
    );

    fake.remove_container(&app).await.expect("remove");
    let deleted = next(&mut events).await;
    assert_eq!(
        (deleted.container_id.as_str(), kind(&deleted)),
        (app.as_str(), ContainerEventType::ContainerDeletedEvent)
    );
    assert!(deleted.containers_statuses.is_empty());

    fake.stop_pod_sandbox(&sandbox).await.expect("stop sandbox");
    let stopped = next(&mut events).await;
    assert_eq!(
        (stopped.container_id.as_str(), kind(&stopped)),
        (sandbox.as_str(), ContainerEventType::ContainerStoppedEvent)
    );
    assert_eq!(
        stopped.pod_sandbox_status.expect("status").state(),
        PodSandboxState::SandboxNotready
    );
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_exit_reaches_the_stream_without_any_other_call() {
    let (fake, sandbox) = fake_with_pod("web").await;
    fake.enable_events();
    fake.set_behavior(
        "job",
        Behavior::ExitAfter {
            after: Duration::from_secs(7),
            code: 1,
        },
    );
    let job = start(&fake, &sandbox, "web", "job").await;
    let mut events = fake.container_events().await.expect("events");
    let began = tokio::time::Instant::now();

    let stopped = next(&mut events).await;
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(7),
        "paused time auto-advanced"
    );
    assert_eq!(stopped.container_id, job);
    assert_eq!(kind(&stopped), ContainerEventType::ContainerStoppedEvent);
    assert_eq!(stopped.containers_statuses[0].exit_code, 1);
}

#[tokio::test(start_paused = true)]
async fn test_driven_exits_and_crashes_are_reported() {
    let (fake, sandbox) = fake_with_pod("web").await;
    let app = start(&fake, &sandbox, "web", "app").await;
    fake.enable_events();
    let mut events = fake.container_events().await.expect("events");

    fake.exit_container(&app, 9);
    let stopped = next(&mut events).await;
    assert_eq!(
        (stopped.container_id.as_str(), kind(&stopped)),
        (app.as_str(), ContainerEventType::ContainerStoppedEvent)
    );
    fake.kill_sandbox(&sandbox);
    let crashed = next(&mut events).await;
    assert_eq!(
        (crashed.container_id.as_str(), kind(&crashed)),
        (sandbox.as_str(), ContainerEventType::ContainerStoppedEvent)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_stream_does_not_stop_the_others() {
    let (fake, sandbox) = fake_with_pod("web").await;
    fake.enable_events();
    let dropped = fake.container_events().await.expect("events");
    let mut kept = fake.container_events().await.expect("events");
    drop(dropped);
    let app = start(&fake, &sandbox, "web", "app").await;
    assert_eq!(next(&mut kept).await.container_id, app);
}
