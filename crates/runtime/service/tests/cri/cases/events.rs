//! GetContainerEvents under a churn of 30 pods, each ending its container a different way: for
//! every container and every sandbox exactly CREATED, STARTED, STOPPED, DELETED in that order,
//! each event with the pod's sandbox status and its containers' statuses as they were then.

use super::{
    assert_clean, container, create, pod, remove_pod, run_pod, start, stop_pod, wait_exited,
};
use crate::fixture::Fixture;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use runtime_service::Runtime;
use std::collections::HashMap;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Request;

const PODS: usize = 30;
/// Only a guard against a hang: events come within milliseconds.
const EVENT_WAIT: Duration = Duration::from_secs(60);

/// How a pod's container ends.
#[derive(Clone, Copy, Debug)]
enum End {
    /// It exits by itself, then the pod goes.
    Exits,
    /// StopPodSandbox kills it.
    PodStopped,
    /// RemoveContainer while it runs.
    RemovedRunning,
}

async fn churn_one(rt: &Runtime, fx: &Fixture, n: usize) -> (String, String, String) {
    let end = [End::Exits, End::PodStopped, End::RemovedRunning][n % 3];
    let config = pod(fx, &format!("ev{n}"));
    let uid = config.metadata.as_ref().unwrap().uid.clone();
    let pod_id = run_pod(rt, config.clone(), "").await;
    let command: &[&str] = match end {
        End::Exits => &["sh", "-c", "exit 3"],
        _ => &["sleep", "1000"],
    };
    let id = create(rt, &pod_id, &config, container("app", command)).await;
    start(rt, &id).await;
    match end {
        End::Exits => {
            wait_exited(rt, &id).await;
        }
        End::PodStopped => {}
        End::RemovedRunning => {
            rt.remove_container(Request::new(RemoveContainerRequest {
                container_id: id.clone(),
            }))
            .await
            .expect("RemoveContainer");
        }
    }
    stop_pod(rt, &pod_id).await;
    remove_pod(rt, &pod_id).await;
    (uid, pod_id, id)
}

fn kind(event: &ContainerEventResponse) -> ContainerEventType {
    ContainerEventType::try_from(event.container_event_type).expect("a known event type")
}

/// The state the subject's own status must show in an event of `kind` (none once deleted).
fn expected_state(kind: ContainerEventType) -> Option<ContainerState> {
    match kind {
        ContainerEventType::ContainerCreatedEvent => Some(ContainerState::ContainerCreated),
        ContainerEventType::ContainerStartedEvent => Some(ContainerState::ContainerRunning),
        ContainerEventType::ContainerStoppedEvent => Some(ContainerState::ContainerExited),
        ContainerEventType::ContainerDeletedEvent => None,
    }
}

/// Checks one event about container `id` of the pod (`uid`, `pod_id`).
fn check_container_event(event: &ContainerEventResponse, uid: &str, pod_id: &str) {
    let sandbox = event.pod_sandbox_status.as_ref().expect("a sandbox status");
    assert_eq!(sandbox.id, pod_id, "{event:?}");
    assert_eq!(sandbox.metadata.as_ref().unwrap().uid, uid);
    let own = event
        .containers_statuses
        .iter()
        .find(|c| c.id == event.container_id);
    match expected_state(kind(event)) {
        Some(state) => {
            let own = own.unwrap_or_else(|| panic!("no status of the container: {event:?}"));
            assert_eq!(own.state, state as i32, "{event:?}");
            assert_eq!(own.metadata.as_ref().unwrap().name, "app");
        }
        None => assert!(own.is_none(), "a deleted container still listed: {event:?}"),
    }
}

/// Checks one event about the sandbox itself.
fn check_sandbox_event(event: &ContainerEventResponse, uid: &str) {
    let sandbox = event.pod_sandbox_status.as_ref().expect("a sandbox status");
    assert_eq!(sandbox.id, event.container_id);
    assert_eq!(sandbox.metadata.as_ref().unwrap().uid, uid);
    let ready = matches!(
        kind(event),
        ContainerEventType::ContainerCreatedEvent | ContainerEventType::ContainerStartedEvent
    );
    let state = if ready {
        PodSandboxState::SandboxReady
    } else {
        PodSandboxState::SandboxNotready
    };
    assert_eq!(sandbox.state, state as i32, "{event:?}");
    if kind(event) == ContainerEventType::ContainerDeletedEvent {
        assert!(event.containers_statuses.is_empty(), "{event:?}");
    }
}

pub fn churn_order_and_completeness(fx: &Fixture) {
    let rt = fx.runtime("events");
    fx.tokio.block_on(async {
        let mut events = rt
            .get_container_events(Request::new(GetEventsRequest {}))
            .await
            .expect("GetContainerEvents")
            .into_inner();
        let pods = futures::future::join_all((0..PODS).map(|n| churn_one(&rt, fx, n))).await;

        // Every pod ends with its sandbox's DELETED: read until all 30 came.
        let sandboxes: HashMap<&str, &str> = pods
            .iter()
            .map(|(uid, pod_id, _)| (pod_id.as_str(), uid.as_str()))
            .collect();
        let mut seen: HashMap<String, Vec<ContainerEventType>> = HashMap::new();
        let mut sandboxes_deleted = 0;
        while sandboxes_deleted < PODS {
            let event = tokio::time::timeout(EVENT_WAIT, events.next())
                .await
                .expect("the events of every pod")
                .expect("the stream goes on")
                .expect("an event, not an error");
            if let Some(uid) = sandboxes.get(event.container_id.as_str()) {
                check_sandbox_event(&event, uid);
                if kind(&event) == ContainerEventType::ContainerDeletedEvent {
                    sandboxes_deleted += 1;
                }
            } else if let Some((uid, pod_id, _)) =
                pods.iter().find(|(_, _, id)| *id == event.container_id)
            {
                check_container_event(&event, uid, pod_id);
            } else {
                panic!("an event about nothing this case made: {event:?}");
            }
            seen.entry(event.container_id.clone())
                .or_default()
                .push(kind(&event));
        }
        use ContainerEventType::*;
        let lifecycle = vec![
            ContainerCreatedEvent,
            ContainerStartedEvent,
            ContainerStoppedEvent,
            ContainerDeletedEvent,
        ];
        for (_, pod_id, id) in &pods {
            assert_eq!(seen.get(id), Some(&lifecycle), "container {id}");
            assert_eq!(seen.get(pod_id), Some(&lifecycle), "sandbox {pod_id}");
        }
        assert_eq!(seen.len(), 2 * PODS);
    });
    assert_clean(fx, "events");
}
