use super::*;
use kubelet_cri::CriError;
use kubelet_cri::api::{PodSandboxMetadata, PodSandboxStatus};
use kubelet_stats::BuildInfo;
use std::collections::VecDeque;
use std::sync::Mutex;

type Answer = kubelet_cri::Result<Vec<kubelet_cri::Result<ContainerEventResponse>>>;

fn event(uid: &str, kind: ContainerEventType) -> kubelet_cri::Result<ContainerEventResponse> {
    Ok(ContainerEventResponse {
        container_id: format!("c-{uid}"),
        container_event_type: kind as i32,
        created_at: 1,
        pod_sandbox_status: Some(PodSandboxStatus {
            metadata: Some(PodSandboxMetadata {
                uid: uid.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers_statuses: vec![],
    })
}

fn broken() -> CriError {
    CriError::Connect {
        endpoint: "in process".into(),
        reason: "fell behind".into(),
    }
}

struct Harness {
    follower: Follower,
    rx: mpsc::UnboundedReceiver<String>,
    relist_now: Arc<Notify>,
    metrics: Arc<KubeletMetrics>,
}

fn harness() -> Harness {
    let (tx, rx) = mpsc::unbounded_channel();
    let relist_now = Arc::new(Notify::new());
    let metrics = Arc::new(KubeletMetrics::new("n", BuildInfo::default()));
    Harness {
        follower: Follower {
            tx,
            evented: Arc::default(),
            relist_now: relist_now.clone(),
            metrics: Some(metrics.clone()),
        },
        rx,
        relist_now,
        metrics,
    }
}

/// Subscriptions answered in turn from `answers`; once they run out, a stream that never ends.
fn subscriptions(
    answers: Vec<Answer>,
) -> impl FnMut() -> futures::future::Ready<kubelet_cri::Result<EventStream>> {
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    move || {
        let answer = answers.lock().unwrap().pop_front();
        futures::future::ready(match answer {
            Some(Ok(events)) => Ok(futures::stream::iter(events).boxed()),
            Some(Err(e)) => Err(e),
            None => Ok(futures::stream::pending().boxed()),
        })
    }
}

/// The value of the sample `name` (no labels) in the metrics text.
fn sample(metrics: &KubeletMetrics, name: &str) -> f64 {
    let text = metrics.encode();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_broken_stream_is_subscribed_again_and_each_start_relists() {
    use ContainerEventType::*;
    let Harness {
        follower,
        mut rx,
        relist_now,
        metrics,
    } = harness();
    let evented = follower.evented.clone();
    let subscribe = subscriptions(vec![
        Err(broken()),
        Ok(vec![
            event("a", ContainerStartedEvent),
            event("b", ContainerCreatedEvent),
            event("c", ContainerStoppedEvent),
            Err(broken()),
        ]),
        Ok(vec![event("d", ContainerDeletedEvent)]),
    ]);
    let task = tokio::spawn(follower.run(subscribe));
    let mut woken = Vec::new();
    for _ in 0..3 {
        woken.push(rx.recv().await.unwrap());
    }
    // Creations wake nobody; every other kind wakes its pod.
    assert_eq!(woken, ["a", "c", "d"]);
    relist_now.notified().await;
    // The third stream ended too; the fourth one stays.
    while !evented.load(Ordering::Relaxed) {
        tokio::time::sleep(RETRY_FIRST).await;
    }
    let success = "kubelet_evented_pleg_connection_success_count_total";
    let errors = "kubelet_evented_pleg_connection_error_count_total";
    let latencies = "kubelet_evented_pleg_connection_latency_seconds_count";
    assert_eq!(sample(&metrics, success), 3.0);
    assert_eq!(sample(&metrics, errors), 3.0);
    assert_eq!(sample(&metrics, latencies), 4.0);
    drop(rx);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_up_to_the_maximum() {
    let Harness { follower, rx, .. } = harness();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let task = tokio::spawn(follower.run(move || {
        seen.lock().unwrap().push(tokio::time::Instant::now());
        futures::future::ready(Err::<EventStream, _>(broken()))
    }));
    tokio::time::sleep(Duration::from_secs(120)).await;
    let attempts = attempts.lock().unwrap().clone();
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps[..8],
        [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0].map(Duration::from_secs_f64)
    );
    drop(rx);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_runtime_without_events_is_left_to_the_relist() {
    let Harness { follower, rx, .. } = harness();
    let evented = follower.evented.clone();
    follower
        .run(|| {
            futures::future::ready(Err::<EventStream, _>(CriError::Unimplemented {
                rpc: "GetContainerEvents",
            }))
        })
        .await;
    assert!(!evented.load(Ordering::Relaxed));
    drop(rx);
}
