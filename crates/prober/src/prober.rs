//! One probe attempt with upstream's retries and events (pkg/kubelet/prober/prober.go).

use crate::events::{PROBE_WARNING, UNHEALTHY};
use crate::handlers::{HandlerError, Handlers, Target};
use crate::spec::ProbeSpec;
use crate::types::{ProbeResult, ProbeType};
use k8s_openapi::api::core::v1::Pod;
use kubelet_kuberuntime::events::{EventRecorder, EventType};

/// Upstream retries a probe that could not run at all (not one that failed) this many times.
const MAX_PROBE_RETRIES: usize = 3;

/// Runs the probe and returns the result to record, `Success` or `Failure`: a warning counts as
/// success and raises ProbeWarning, a failure raises Unhealthy. An error means the probe could
/// not be run even after retries; it raises Unhealthy and the caller discards the attempt.
pub async fn run(
    handlers: &Handlers,
    events: &dyn EventRecorder,
    pod: &Pod,
    probe_type: ProbeType,
    spec: &ProbeSpec,
    target: Target<'_>,
) -> Result<ProbeResult, HandlerError> {
    let mut attempt = 0;
    let outcome = loop {
        attempt += 1;
        match handlers.run(&spec.probe, target, spec.timeout).await {
            Ok(outcome) => break outcome,
            Err(err) if attempt < MAX_PROBE_RETRIES => {
                tracing::debug!(probe = %probe_type, container = target.container.name, error = %err, "probe errored, retrying");
            }
            Err(err) => {
                tracing::info!(probe = %probe_type, container = target.container.name, error = %err, "probe errored");
                let message = format!("{probe_type} probe errored: {err}");
                events.event(pod, EventType::Warning, UNHEALTHY, &message);
                return Err(err);
            }
        }
    };
    match outcome.result {
        ProbeResult::Success => Ok(ProbeResult::Success),
        ProbeResult::Warning => {
            let message = format!("{probe_type} probe warning: {}", outcome.output);
            events.event(pod, EventType::Warning, PROBE_WARNING, &message);
            Ok(ProbeResult::Success)
        }
        ProbeResult::Failure => {
            let message = format!("{probe_type} probe failed: {}", outcome.output);
            events.event(pod, EventType::Warning, UNHEALTHY, &message);
            Ok(ProbeResult::Failure)
        }
    }
}
