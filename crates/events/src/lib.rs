//! Events to the API server, as the Go kubelet's client-go recorder writes them: built with the
//! object's reference and the kubelet as source, correlated (repeats counted, similar events
//! combined, floods dropped) and written in the background with retries.

mod correlator;
mod recorder;
mod sink;

pub use correlator::{
    AGGREGATE_INTERVAL, AGGREGATE_MAX_EVENTS, Correlated, Correlator, LRU_CACHE_SIZE, SPAM_BURST,
    SPAM_QPS, event_key, event_name,
};
pub use recorder::{ApiEventRecorder, COMPONENT, RecorderOptions, node_reference, pod_reference};
pub use sink::RetryPolicy;
