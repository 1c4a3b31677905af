//! A redirect to another host through the whole manager: success, with a ProbeWarning event.

mod support;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Pod, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubelet_cri::fake::FakeRuntime;
use kubelet_kuberuntime::events::{EventRecorder, EventType};
use kubelet_prober::events::PROBE_WARNING;
use kubelet_prober::{ContainerRun, ProbeManager, ProbeResult, ProbeType};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Events(Mutex<Vec<(EventType, String, String)>>);

impl EventRecorder for Events {
    fn event(&self, _pod: &Pod, kind: EventType, reason: &str, message: &str) {
        let event = (kind, reason.to_string(), message.to_string());
        self.0.lock().unwrap().push(event);
    }
}

#[tokio::test]
async fn a_redirect_elsewhere_counts_as_success_and_warns() {
    let port = support::http_server().await;
    let events = Arc::new(Events::default());
    let (manager, mut updates) = ProbeManager::new(Arc::new(FakeRuntime::new()), events.clone());
    let container = Container {
        name: "app".into(),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(i32::from(port)),
                path: Some("/elsewhere".into()),
                ..Default::default()
            }),
            failure_threshold: Some(1),
            period_seconds: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-web".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            ..Default::default()
        }),
        ..Default::default()
    };
    let run = ContainerRun {
        name: "app".into(),
        id: "c1".into(),
        started_at: tokio::time::Instant::now(),
        restart_count: 0,
    };
    manager.sync_pod(&pod, &[run], Some("127.0.0.1"));

    let initial = updates.recv().await.expect("the initial result");
    assert_eq!(
        (initial.probe, initial.result),
        (ProbeType::Liveness, ProbeResult::Success)
    );
    // The worker may wait up to one period after the manager's start.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while events.0.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recorded = events.0.lock().unwrap().clone();
    let (kind, reason, message) = recorded.first().expect("an event").clone();
    assert_eq!((kind, reason.as_str()), (EventType::Warning, PROBE_WARNING));
    assert!(
        message.starts_with("Liveness probe warning: Probe terminated redirects, Response body: "),
        "{message}"
    );
    assert!(!manager.liveness_failed("uid-web", "c1"));
    assert_eq!(
        manager.result("uid-web", "c1", ProbeType::Liveness),
        Some(ProbeResult::Success)
    );
}
