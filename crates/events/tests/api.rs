//! The recorder against the test API server: what it creates, how it counts repeats, how few
//! writes a flood costs, and that an outage neither blocks nor breaks it.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use kubelet_events::{ApiEventRecorder, RecorderOptions, RetryPolicy};
use kubelet_kuberuntime::events::{EventRecorder, EventType};
use kubelet_test_apiserver::TestApiServer;
use std::time::Duration;
use tokio::time::Instant;

const NODE: &str = "node-a";

fn client(server: &TestApiServer) -> kube::Client {
    let config = kube::Config::new(server.url().parse().expect("a URL"));
    kube::Client::try_from(config).expect("a client")
}

fn pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-1", "resourceVersion": "7"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }))
    .unwrap()
}

async fn events(client: &kube::Client) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
}

/// Waits until `done` holds for the listed events, for at most ten seconds.
async fn wait_for(client: &kube::Client, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = events(client).await;
        if done(&listed) {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "events never settled: {listed:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server's resource version stops moving: the writer is idle.
async fn settle(server: &TestApiServer) -> u64 {
    let mut last = server.store().resource_version();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = server.store().resource_version();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn an_event_carries_the_upstream_fields() {
    let server = TestApiServer::start();
    let client = client(&server);
    let recorder = ApiEventRecorder::start(client.clone(), NODE.into());
    recorder.event(
        &pod(),
        EventType::Warning,
        "BackOff",
        "Back-off pulling image",
    );
    let listed = wait_for(&client, |e| e.len() == 1).await;
    let e = &listed[0];
    assert!(e.metadata.name.as_deref().unwrap().starts_with("web."));
    let o = &e.involved_object;
    assert_eq!(o.api_version.as_deref(), Some("v1"));
    assert_eq!(o.kind.as_deref(), Some("Pod"));
    assert_eq!(o.name.as_deref(), Some("web"));
    assert_eq!(o.namespace.as_deref(), Some("default"));
    assert_eq!(o.uid.as_deref(), Some("uid-1"));
    assert_eq!(o.resource_version.as_deref(), Some("7"));
    assert_eq!(e.reason.as_deref(), Some("BackOff"));
    assert_eq!(e.message.as_deref(), Some("Back-off pulling image"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.count, Some(1));
    let source = e.source.as_ref().unwrap();
    assert_eq!(source.component.as_deref(), Some("kubelet"));
    assert_eq!(source.host.as_deref(), Some(NODE));
    assert_eq!(e.reporting_component.as_deref(), Some("kubelet"));
    assert_eq!(e.reporting_instance.as_deref(), Some(NODE));
    assert!(e.first_timestamp.is_some());
    assert_eq!(e.first_timestamp, e.last_timestamp);
}

#[tokio::test]
async fn node_events_go_to_the_default_namespace() {
    let server = TestApiServer::start();
    let client = client(&server);
    let recorder = ApiEventRecorder::start(client.clone(), NODE.into());
    recorder.record_node(EventType::Normal, "Starting", "Starting kubelet.");
    let listed = wait_for(&client, |e| e.len() == 1).await;
    let o = &listed[0].involved_object;
    assert_eq!(o.kind.as_deref(), Some("Node"));
    assert_eq!(o.name.as_deref(), Some(NODE));
    assert_eq!(o.uid.as_deref(), Some(NODE));
    assert!(
        listed[0]
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("node-a.")
    );
}

#[tokio::test]
async fn repeats_are_counted_on_one_event() {
    let server = TestApiServer::start();
    let client = client(&server);
    let recorder = ApiEventRecorder::start(client.clone(), NODE.into());
    for _ in 0..3 {
        recorder.event(&pod(), EventType::Normal, "Pulled", "Image is present");
    }
    let listed = wait_for(&client, |e| e.first().and_then(|e| e.count) == Some(3)).await;
    assert_eq!(listed.len(), 1);
    let e = &listed[0];
    assert!(e.last_timestamp >= e.first_timestamp);
    assert_eq!(e.message.as_deref(), Some("Image is present"));
}

#[tokio::test]
async fn a_crash_loop_flood_costs_a_bounded_number_of_writes() {
    let server = TestApiServer::start();
    let client = client(&server);
    let before = server.store().resource_version();
    let recorder = ApiEventRecorder::start(client.clone(), NODE.into());
    let started = Instant::now();
    for i in 0..1000 {
        recorder.event(
            &pod(),
            EventType::Warning,
            "BackOff",
            "Back-off restarting failed container c in pod web_default(uid-1)",
        );
        // Crash loops also vary their messages: those are combined.
        recorder.event(
            &pod(),
            EventType::Warning,
            "Failed",
            &format!("Error: exit code {i}"),
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "recording blocked"
    );
    let after = settle(&server).await;
    // One bucket of 25 for the pod, shared by both reasons.
    assert!(after - before <= 25, "{} writes", after - before);
    let listed = events(&client).await;
    let total: i32 = listed.iter().filter_map(|e| e.count).sum();
    assert_eq!(total, 25);
    assert!(listed.len() <= 11, "{} events", listed.len());
}

#[tokio::test]
async fn aggregated_similar_events() {
    let server = TestApiServer::start();
    let client = client(&server);
    let recorder = ApiEventRecorder::start(client.clone(), NODE.into());
    for i in 0..12 {
        recorder.event(&pod(), EventType::Warning, "Failed", &format!("error {i}"));
    }
    let listed = wait_for(&client, |e| {
        e.iter().any(|e| {
            e.count == Some(3)
                && e.message.as_deref() == Some("(combined from similar events): error 11")
        })
    })
    .await;
    assert_eq!(listed.len(), 10);
}

#[tokio::test]
async fn an_outage_neither_blocks_nor_loses_later_events() {
    let server = TestApiServer::start();
    let client = client(&server);
    let options = RecorderOptions {
        queue_size: 8,
        retry: RetryPolicy {
            max_tries: 3,
            sleep: Duration::from_millis(50),
        },
    };
    let recorder = ApiEventRecorder::start_with(client.clone(), NODE.into(), options);
    server.stop_listener();
    let started = Instant::now();
    // Far more than the queue holds: the rest are dropped, the caller never waits.
    for i in 0..200 {
        recorder.event(&pod(), EventType::Warning, "Failed", &format!("down {i}"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "recording blocked"
    );
    // The queued ones are retried, then given up on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart_listener().expect("listen again");
    recorder.event(&pod(), EventType::Normal, "Started", "Started container c");
    let listed = wait_for(&client, |e| {
        e.iter().any(|e| e.reason.as_deref() == Some("Started"))
    })
    .await;
    assert!(listed.iter().all(|e| e.reason.as_deref() != Some("Failed")));
}

#[tokio::test]
async fn a_deleted_event_is_created_again_with_its_count() {
    let server = TestApiServer::start();
    let client = client(&server);
    let recorder = ApiEventRecorder::start(client.clone(), NODE.into());
    recorder.event(&pod(), EventType::Warning, "BackOff", "Back-off");
    let listed = wait_for(&client, |e| e.len() == 1).await;
    let name = listed[0].metadata.name.clone().unwrap();
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.delete(&name, &Default::default())
        .await
        .expect("delete the event");
    recorder.event(&pod(), EventType::Warning, "BackOff", "Back-off");
    let listed = wait_for(&client, |e| e.len() == 1).await;
    assert_eq!(listed[0].metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(listed[0].count, Some(2));
}
