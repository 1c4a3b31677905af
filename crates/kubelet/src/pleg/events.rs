//! The evented half of the PLEG (upstream pleg/evented.go): follows the runtime's CRI container
//! events and wakes each event's pod at once. While the stream cannot be had, or after it broke,
//! the relist runs at its short period and the stream is subscribed again with back-off.

use super::RELIST_PERIOD;
use futures::StreamExt;
use futures::stream::BoxStream;
use kubelet_cri::api::{ContainerEventResponse, ContainerEventType};
use kubelet_stats::KubeletMetrics;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc};

/// The first wait before subscribing again, doubled after each failure up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub(super) type EventStream = BoxStream<'static, kubelet_cri::Result<ContainerEventResponse>>;

/// How one subscription ended.
enum End {
    /// The sync loop is gone: nothing to wake any more.
    ReceiverGone,
    Broke(String),
}

pub(super) struct Follower {
    pub(super) tx: mpsc::UnboundedSender<String>,
    /// True while a stream is followed: the relist then only runs as a safety net.
    pub(super) evented: Arc<AtomicBool>,
    /// Asks the relist loop for a relist now.
    pub(super) relist_now: Arc<Notify>,
    pub(super) metrics: Option<Arc<KubeletMetrics>>,
}

impl Follower {
    /// Follows the streams `subscribe` gives, subscribing again after each failure; returns when
    /// the runtime has no container events or nobody listens any more.
    pub(super) async fn run<F, Fut>(self, mut subscribe: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kubelet_cri::Result<EventStream>>,
    {
        let mut retry = RETRY_FIRST;
        loop {
            let error = match subscribe().await {
                Ok(stream) => {
                    self.connected();
                    let (end, delivered) = self.forward(stream).await;
                    self.evented.store(false, Ordering::Relaxed);
                    // What changed since the break is known only to a relist.
                    self.relist_now.notify_one();
                    if delivered {
                        retry = RETRY_FIRST;
                    }
                    match end {
                        End::ReceiverGone => return,
                        End::Broke(error) => error,
                    }
                }
                Err(e) if e.is_unimplemented() => {
                    tracing::info!(
                        "the runtime has no container events: relisting every {RELIST_PERIOD:?}"
                    );
                    return;
                }
                Err(e) => e.to_string(),
            };
            if let Some(m) = &self.metrics {
                m.inc_evented_pleg_connection_error();
            }
            tracing::warn!(
                error,
                retry_in = ?retry,
                "no container events: relisting every {RELIST_PERIOD:?} until subscribed again"
            );
            tokio::time::sleep(retry).await;
            if self.tx.is_closed() {
                return;
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    fn connected(&self) {
        if let Some(m) = &self.metrics {
            m.inc_evented_pleg_connection();
        }
        self.evented.store(true, Ordering::Relaxed);
        // Changes before the subscription are in no event: one relist catches them up.
        self.relist_now.notify_one();
        tracing::info!("following the runtime's container events");
    }

    /// Forwards one stream's events until it ends; also says whether any event came.
    async fn forward(&self, mut stream: EventStream) -> (End, bool) {
        let mut delivered = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    delivered = true;
                    if !self.deliver(event) {
                        return (End::ReceiverGone, delivered);
                    }
                }
                Err(e) => return (End::Broke(e.to_string()), delivered),
            }
        }
        let ended = "the runtime ended the container event stream".to_string();
        (End::Broke(ended), delivered)
    }

    /// Wakes the event's pod; false once nobody listens any more.
    fn deliver(&self, event: ContainerEventResponse) -> bool {
        if let Some(m) = &self.metrics {
            m.observe_evented_pleg_latency(since(event.created_at));
        }
        let kind = ContainerEventType::try_from(event.container_event_type).ok();
        let Some(pod) = event.pod_sandbox_status.and_then(|s| s.metadata) else {
            tracing::debug!(
                container_id = event.container_id,
                "a container event without its pod: left to the relist"
            );
            return true;
        };
        // As upstream: a creation is the pod worker's own doing and changes nothing it would
        // act on; its start (or failure) comes as an event of its own.
        if kind == Some(ContainerEventType::ContainerCreatedEvent) || pod.uid.is_empty() {
            return true;
        }
        tracing::debug!(
            pod_uid = pod.uid,
            namespace = pod.namespace,
            name = pod.name,
            container_id = event.container_id,
            kind = kind.map_or("unknown", |k| k.as_str_name()),
            "pod woken by a container event"
        );
        self.tx.send(pod.uid).is_ok()
    }
}

/// Time since `created_at` (nanoseconds since the epoch); zero for a clock that went back.
fn since(created_at: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(Duration::from_nanos(created_at.max(0) as u64))
}

#[cfg(test)]
mod tests;
