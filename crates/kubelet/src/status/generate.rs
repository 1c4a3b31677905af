//! Computes a pod's API status from its spec, the runtime's view and the last sync's waiting
//! reasons (upstream generateAPIPodStatus, getPhase, and the status/ condition generators).

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kubelet_kuberuntime::actions::{is_sidecar, should_restart};
use kubelet_kuberuntime::ephemeral;
use kubelet_kuberuntime::qos::qos_class;
use kubelet_kuberuntime::runtime_status::{self, ContainerState as RtState, PodRuntimeStatus};
use kubelet_kuberuntime::sync::SyncResult;

use super::conditions;

/// Pod phases as the API spells them.
pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

/// What the status is computed from.
pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    pub runtime: &'a PodRuntimeStatus,
    pub sync: &'a SyncResult,
    pub runtime_name: &'a str,
    pub host_ip: Option<&'a str>,
    /// The previous status, for startTime and transition times.
    pub previous: Option<&'a PodStatus>,
    pub now: Time,
    pub probes: &'a dyn ProbeView,
}

/// What the prober says of running containers, by container id.
pub trait ProbeView: Send + Sync {
    /// Readiness: true without a readiness probe; with one, once it succeeds.
    fn ready(&self, pod_uid: &str, container_id: &str) -> bool;
    /// Started: true without a startup probe; with one, once it succeeds.
    fn started(&self, pod_uid: &str, container_id: &str) -> bool;
}

/// No prober: every running container counts as started and ready.
pub struct NoProbes;

impl ProbeView for NoProbes {
    fn ready(&self, _: &str, _: &str) -> bool {
        true
    }
    fn started(&self, _: &str, _: &str) -> bool {
        true
    }
}

fn ts(ns: i64) -> Option<Time> {
    if ns <= 0 {
        return None;
    }
    let secs = ns / 1_000_000_000;
    let nanos = (ns % 1_000_000_000) as u32;
    k8s_openapi::jiff::Timestamp::new(secs, nanos as i32)
        .ok()
        .map(Time)
}

fn terminated(c: &runtime_status::ContainerStatus, runtime_name: &str) -> ContainerStateTerminated {
    let reason = if !c.reason.is_empty() {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason),
        message: c
            .termination_message
            .clone()
            .or_else(|| (!c.message.is_empty()).then(|| c.message.clone())),
        started_at: ts(c.started_at),
        finished_at: ts(c.finished_at),
        container_id: Some(format!("{runtime_name}://{}", c.id)),
        signal: None,
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

/// Which list of the spec a container comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    App,
    Init,
    /// Never restarted, never ready, and without the prober's `started`, as upstream reports it.
    Ephemeral,
}

/// Whether the container's current instance, no longer running, will run again. An init container
/// runs again only after a failure; an ephemeral one never does.
fn runs_again(pod: &Pod, c: &Container, cur: &runtime_status::ContainerStatus, role: Role) -> bool {
    let init = role == Role::Init;
    if role == Role::Ephemeral {
        return false;
    }
    if init && is_sidecar(c) {
        return true;
    }
    if init {
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always");
        return policy != "Never" && (cur.exit_code != 0 || cur.state == RtState::Unknown);
    }
    should_restart(pod, Some(cur))
}

/// One container's status. `default_reason` is the waiting reason before it ever ran.
fn container_status(
    input: &StatusInput,
    c: &Container,
    default_reason: &str,
    role: Role,
) -> ContainerStatus {
    let init = role == Role::Init;
    let mut instances = input.runtime.instances(&c.name);
    let current = instances.next();
    let previous = instances.next();
    let sync_wait = input.sync.waiting.get(&c.name);
    let image = c.image.clone().unwrap_or_default();

    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: image.clone(),
        ..Default::default()
    };
    let Some(cur) = current else {
        let (reason, message) = match (sync_wait, &input.sync.pod_error) {
            (Some(w), _) => (w.reason.as_str(), Some(w.message.clone())),
            _ => (default_reason, None),
        };
        status.state = Some(waiting(reason, message));
        return status;
    };
    status.container_id = Some(format!("{}://{}", input.runtime_name, cur.id));
    status.image_id = cur.image_ref.clone();
    status.restart_count = cur.restart_count() as i32;
    match cur.state {
        RtState::Running => {
            status.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: ts(cur.started_at),
                }),
                ..Default::default()
            });
            let uid = input.pod.metadata.uid.as_deref().unwrap_or_default();
            // An ordinary init container is never ready while it runs.
            let started = input.probes.started(uid, &cur.id);
            status.ready = role != Role::Ephemeral
                && (!init || is_sidecar(c))
                && started
                && input.probes.ready(uid, &cur.id);
            status.started = (role != Role::Ephemeral).then_some(started);
            status.last_state = previous.map(|p| ContainerState {
                terminated: Some(terminated(p, input.runtime_name)),
                ..Default::default()
            });
        }
        RtState::Exited | RtState::Unknown if runs_again(input.pod, c, cur, role) => {
            // It will run again: waiting, with this run as the last state.
            let (reason, message) = match sync_wait {
                Some(w) => (w.reason.as_str(), Some(w.message.clone())),
                None => ("ContainerCreating", None),
            };
            status.state = Some(waiting(reason, message));
            status.last_state = Some(ContainerState {
                terminated: Some(terminated(cur, input.runtime_name)),
                ..Default::default()
            });
            status.started = Some(false);
        }
        RtState::Exited | RtState::Unknown => {
            status.state = Some(ContainerState {
                terminated: Some(terminated(cur, input.runtime_name)),
                ..Default::default()
            });
            // A finished init container counts as ready once it succeeded.
            status.ready = init && cur.state == RtState::Exited && cur.exit_code == 0;
            status.last_state = previous.map(|p| ContainerState {
                terminated: Some(terminated(p, input.runtime_name)),
                ..Default::default()
            });
            status.started = (role != Role::Ephemeral).then_some(false);
        }
        RtState::Created => {
            let (reason, message) = match sync_wait {
                Some(w) => (w.reason.as_str(), Some(w.message.clone())),
                None => ("ContainerCreating", None),
            };
            status.state = Some(waiting(reason, message));
            status.started = (role != Role::Ephemeral).then_some(false);
        }
    }
    status
}

/// Statuses of the ephemeral containers, none without any (upstream passes hasInitContainers, so
/// one not yet run waits for PodInitializing in a pod with init containers).
fn ephemeral_statuses(input: &StatusInput, has_inits: bool) -> Option<Vec<ContainerStatus>> {
    let specs = ephemeral::containers(input.pod);
    let default_reason = if has_inits {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    (!specs.is_empty()).then(|| {
        specs
            .iter()
            .map(|c| container_status(input, c, default_reason, Role::Ephemeral))
            .collect()
    })
}

fn is_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|st| st.terminated.as_ref())
}

fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
}

/// The pod phase (upstream getPhase, with sidecars): ordinary init containers gate the pod;
/// sidecars count as running but never make a pod Succeeded or Failed.
pub fn phase(pod: &Pod, init: &[ContainerStatus], app: &[ContainerStatus]) -> &'static str {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let init_specs = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let (mut pending_init, mut failed_init, mut pending_sidecars) = (0, 0, 0);
    let (mut running, mut waiting_n, mut stopped, mut succeeded, mut unknown) = (0, 0, 0, 0, 0);
    for (c, s) in init_specs.iter().zip(init) {
        let st = s.state.as_ref();
        if is_sidecar(c) {
            if st.is_some_and(|st| st.running.is_some()) {
                running += 1;
                if s.started != Some(true) {
                    pending_sidecars += 1;
                }
            } else if st.is_some_and(|st| st.waiting.is_some()) && last_terminated(s).is_none() {
                pending_sidecars += 1;
            } else if st.is_none() {
                pending_sidecars += 1;
                unknown += 1;
            }
            continue;
        }
        if st.is_some_and(|st| st.running.is_some()) {
            pending_init += 1;
        } else if let Some(t) = is_terminated(s) {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if let Some(t) = last_terminated(s) {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else {
            pending_init += 1;
        }
    }
    let mut app_started = false;
    for s in app {
        let st = s.state.as_ref();
        if st.is_some_and(|st| st.running.is_some()) {
            running += 1;
            app_started = true;
        } else if let Some(t) = is_terminated(s) {
            stopped += 1;
            app_started = true;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if last_terminated(s).is_some() {
            stopped += 1;
            app_started = true;
        } else {
            waiting_n += 1;
        }
    }
    if failed_init > 0 && policy == "Never" {
        return FAILED;
    }
    if pending_init > 0 || (pending_sidecars > 0 && !app_started) || waiting_n > 0 {
        return PENDING;
    }
    if running > 0 && unknown == 0 {
        return RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if policy == "Always" {
            return RUNNING;
        }
        if stopped == succeeded {
            return SUCCEEDED;
        }
        if policy == "Never" {
            return FAILED;
        }
        return RUNNING;
    }
    PENDING
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    previous: Option<&PodStatus>,
    now: &Time,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the condition's status does.
    let last = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.map(Into::into),
        last_transition_time: Some(last.unwrap_or_else(|| now.clone())),
        ..Default::default()
    }
}

/// Computes the pod's status.
pub fn generate(input: &StatusInput) -> PodStatus {
    let spec = input.pod.spec.as_ref();
    let inits: Vec<ContainerStatus> = spec
        .and_then(|s| s.init_containers.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| container_status(input, c, "PodInitializing", Role::Init))
                .collect()
        })
        .unwrap_or_default();
    let has_inits = !inits.is_empty();
    let init_specs = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    // App containers wait for PodInitializing until every ordinary init container succeeded
    // and every sidecar has started.
    let init_done = init_specs.iter().zip(&inits).all(|(c, s)| {
        if is_sidecar(c) {
            s.started == Some(true)
        } else {
            is_terminated(s).is_some_and(|t| t.exit_code == 0)
        }
    });
    let default_reason = if init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let apps: Vec<ContainerStatus> = spec
        .map(|s| {
            s.containers
                .iter()
                .map(|c| container_status(input, c, default_reason, Role::App))
                .collect()
        })
        .unwrap_or_default();
    let mut phase = phase(input.pod, &inits, &apps);
    // A pod never leaves Succeeded or Failed.
    if let Some(prev) = input.previous.and_then(|p| p.phase.as_deref())
        && (prev == SUCCEEDED || prev == FAILED)
    {
        phase = if prev == SUCCEEDED { SUCCEEDED } else { FAILED };
    }

    let sandbox_ready = input.runtime.sandbox().is_some_and(|s| s.ready);
    let now = &input.now;
    let prev = input.previous;
    // Conditions the kubelet does not compute (DisruptionTarget, readiness gates set by
    // controllers) are kept, from the API's status first.
    let owned = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    let mut others: Vec<PodCondition> = Vec::new();
    let api_conditions = input
        .pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref());
    for c in api_conditions
        .into_iter()
        .chain(prev.and_then(|p| p.conditions.as_ref()))
        .flatten()
    {
        if !owned.contains(&c.type_.as_str()) && !others.iter().any(|o| o.type_ == c.type_) {
            others.push(c.clone());
        }
    }
    let initialized = conditions::initialized(init_specs, &inits, &apps, phase);
    let containers_ready = conditions::containers_ready(init_specs, &inits, &apps, phase);
    let ready = conditions::ready(input.pod, &containers_ready, &others);
    let owned_condition = |kind: &str, v: &conditions::Verdict| PodCondition {
        message: v.message.clone(),
        ..condition(kind, v.ok, v.reason, prev, now)
    };
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, prev, now),
        owned_condition("Initialized", &initialized),
        owned_condition("Ready", &ready),
        owned_condition("ContainersReady", &containers_ready),
        condition("PodScheduled", true, None, prev, now),
    ];
    if let Some(e) = &input.sync.pod_error {
        conditions[0].message = Some(e.message.clone());
    }
    conditions.extend(others);

    let ips: Vec<String> = match input.runtime.sandbox() {
        Some(sb) if sb.host_network => input
            .host_ip
            .map(|ip| vec![ip.to_string()])
            .unwrap_or_default(),
        Some(sb) => sb.ips.clone(),
        None => prev
            .and_then(|p| p.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|i| i.ip.clone()).collect())
            .unwrap_or_default(),
    };
    let start_time = prev
        .and_then(|p| p.start_time.clone())
        .or_else(|| Some(now.clone()));

    // A terminal pod keeps the reason it ended with (DeadlineExceeded, an admission failure, ...).
    let (reason, message) =
        match prev.filter(|p| matches!(p.phase.as_deref(), Some(SUCCEEDED) | Some(FAILED))) {
            Some(p) => (p.reason.clone(), p.message.clone()),
            None => (None, None),
        };
    PodStatus {
        phase: Some(phase.into()),
        reason,
        message,
        conditions: Some(conditions),
        host_ip: input.host_ip.map(Into::into),
        host_ips: input.host_ip.map(|ip| vec![HostIP { ip: ip.into() }]),
        pod_ip: ips.first().cloned(),
        pod_ips: (!ips.is_empty()).then(|| ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time,
        qos_class: Some(qos_class(input.pod).as_str().into()),
        init_container_statuses: has_inits.then_some(inits),
        container_statuses: Some(apps),
        ephemeral_container_statuses: ephemeral_statuses(input, has_inits),
        ..Default::default()
    }
}
