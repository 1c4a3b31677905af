//! A container's probe as the worker runs it: the API object with upstream defaults applied.

use crate::types::ProbeType;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use std::time::Duration;

/// Upstream's API defaults for a probe (pkg/apis/core/v1/defaults.go): the API server fills
/// them in, but static pods may arrive without them.
const DEFAULT_TIMEOUT_SECONDS: i32 = 1;
const DEFAULT_PERIOD_SECONDS: i32 = 10;
const DEFAULT_SUCCESS_THRESHOLD: i32 = 1;
const DEFAULT_FAILURE_THRESHOLD: i32 = 3;

/// One probe's timing and thresholds, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub probe: Probe,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeSpec {
    pub fn new(probe: &Probe) -> Self {
        let seconds = |value: Option<i32>, default: i32| {
            // Validation rejects values below the minimum; clamp rather than trust a static pod.
            Duration::from_secs(value.unwrap_or(default).max(0) as u64)
        };
        let count = |value: Option<i32>, default: i32| value.unwrap_or(default).max(1) as u32;
        let period = seconds(probe.period_seconds, DEFAULT_PERIOD_SECONDS);
        ProbeSpec {
            probe: probe.clone(),
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            // A zero period would make the ticker spin.
            period: period.max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, DEFAULT_TIMEOUT_SECONDS),
            success_threshold: count(probe.success_threshold, DEFAULT_SUCCESS_THRESHOLD),
            failure_threshold: count(probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD),
        }
    }
}

/// The container's probe of this type, if it has one.
pub fn container_probe(container: &Container, probe: ProbeType) -> Option<&Probe> {
    match probe {
        ProbeType::Liveness => container.liveness_probe.as_ref(),
        ProbeType::Readiness => container.readiness_probe.as_ref(),
        ProbeType::Startup => container.startup_probe.as_ref(),
    }
}

/// The containers of a pod that can have probes: the app containers and the restartable init
/// containers (sidecars). Ordinary init containers run to completion and are never probed.
pub fn probed_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let sidecars = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let apps = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    sidecars.chain(apps.iter())
}

/// The grace period to kill `container_name` with after its `probe` failed, when the probe sets
/// its own terminationGracePeriodSeconds (upstream `setTerminationGracePeriod`): a pod being
/// deleted keeps its deletion grace period, and readiness failures never kill. `None` means the
/// caller uses the pod's grace period as usual.
pub fn kill_grace_period(pod: &Pod, container_name: &str, probe: ProbeType) -> Option<Duration> {
    if probe == ProbeType::Readiness || pod.metadata.deletion_grace_period_seconds.is_some() {
        return None;
    }
    let container = probed_containers(pod).find(|c| c.name == container_name)?;
    let seconds = container_probe(container, probe)?.termination_grace_period_seconds?;
    Some(Duration::from_secs(seconds.max(0) as u64))
}
