//! The recorder the kubelet hands its events to: it builds the event as client-go's recorder
//! does and queues it for a background task that correlates and writes. Recording never blocks:
//! a full queue drops the event with a log line, as client-go's broadcaster does.

use crate::correlator::{Correlator, event_name};
use crate::sink::{self, RetryPolicy};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kubelet_kuberuntime::events::{EventRecorder, EventType};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The component events come from.
pub const COMPONENT: &str = "kubelet";

#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// Events waiting to be written before new ones are dropped (client-go maxQueuedEvents).
    pub queue_size: usize,
    pub retry: RetryPolicy,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            queue_size: 1000,
            retry: RetryPolicy::default(),
        }
    }
}

/// The reference the kubelet's pod events carry (client-go reference.GetReference).
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// The reference the kubelet's node events carry: the node name stands in for its UID.
pub fn node_reference(node_name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("Node".into()),
        name: Some(node_name.into()),
        uid: Some(node_name.into()),
        ..ObjectReference::default()
    }
}

fn type_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// Records events to the API server through client-go's correlation.
pub struct ApiEventRecorder {
    queue: mpsc::Sender<Event>,
    node_name: String,
}

impl ApiEventRecorder {
    /// Starts the writer task on the current tokio runtime with client-go's defaults; it ends
    /// once the recorder is dropped and its queue drained.
    pub fn start(client: kube::Client, node_name: String) -> Arc<Self> {
        Self::start_with(client, node_name, RecorderOptions::default())
    }

    pub fn start_with(
        client: kube::Client,
        node_name: String,
        options: RecorderOptions,
    ) -> Arc<Self> {
        let (queue, mut events) = mpsc::channel(options.queue_size.max(1));
        tokio::spawn(async move {
            let mut correlator = Correlator::new();
            while let Some(event) = events.recv().await {
                let now = tokio::time::Instant::now();
                if let Some(c) = correlator.correlate(event, now, Timestamp::now()) {
                    sink::record(&client, &mut correlator, c, &options.retry).await;
                }
            }
        });
        Arc::new(Self { queue, node_name })
    }

    /// Records an event about `object` (client-go recorder.Event).
    pub fn record(&self, object: ObjectReference, kind: EventType, reason: &str, message: &str) {
        let event = self.make_event(object, kind, reason, message, Timestamp::now());
        if let Err(e) = self.queue.try_send(event) {
            let event = e.into_inner();
            tracing::error!(
                object = event.involved_object.name.as_deref().unwrap_or(""),
                reason,
                "unable to record event: too many queued events, dropped event"
            );
        }
    }

    /// Records an event about this node.
    pub fn record_node(&self, kind: EventType, reason: &str, message: &str) {
        self.record(node_reference(&self.node_name), kind, reason, message);
    }

    fn make_event(
        &self,
        object: ObjectReference,
        kind: EventType,
        reason: &str,
        message: &str,
        at: Timestamp,
    ) -> Event {
        let time = Time(at);
        // Events about cluster-scoped objects live in the default namespace.
        let namespace = object
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".into());
        Event {
            metadata: ObjectMeta {
                name: Some(event_name(object.name.as_deref().unwrap_or(""), at)),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: object,
            reason: Some(reason.into()),
            message: Some(message.into()),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            count: Some(1),
            type_: Some(type_name(kind).into()),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: Some(self.node_name.clone()),
            }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(self.node_name.clone()),
            ..Event::default()
        }
    }
}

impl EventRecorder for ApiEventRecorder {
    fn event(&self, pod: &Pod, kind: EventType, reason: &str, message: &str) {
        self.record(pod_reference(pod), kind, reason, message);
    }

    fn node_event(&self, kind: EventType, reason: &str, message: &str) {
        self.record_node(kind, reason, message);
    }
}
