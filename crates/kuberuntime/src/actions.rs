//! What one sync must do, computed from the pod's spec, the runtime's view of it and the probe
//! results (upstream computePodActions and computeInitContainerActions, with sidecars). Pure: the
//! same inputs always give the same actions.

use crate::hash::spec_unchanged;
use crate::runtime_status::{ContainerState, ContainerStatus, PodRuntimeStatus};
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerToKill {
    pub name: String,
    pub message: String,
    /// A probe's own terminationGracePeriodSeconds, when a failed probe is the cause.
    pub grace: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every container and the sandbox first.
    pub kill_pod: bool,
    pub create_sandbox: bool,
    /// The sandbox to use when none is created.
    pub sandbox_id: Option<String>,
    /// The attempt number of the sandbox to create.
    pub attempt: u32,
    /// Indexes into spec.initContainers of the init containers to start, in spec order.
    pub init_containers_to_start: Vec<usize>,
    /// Indexes into spec.containers of the containers to start.
    pub containers_to_start: Vec<usize>,
    /// Indexes into spec.ephemeralContainers of the ephemeral containers to start.
    pub ephemeral_containers_to_start: Vec<usize>,
    /// Running containers to stop, by container id.
    pub containers_to_kill: BTreeMap<String, ContainerToKill>,
}

/// What the prober has found for a container, by container id. `None`: no result yet.
pub trait ProbeResults: Send + Sync {
    fn liveness(&self, pod_uid: &str, container_id: &str) -> Option<bool>;
    fn startup(&self, pod_uid: &str, container_id: &str) -> Option<bool>;
}

/// For pods and tests without a prober: no probe has a result.
pub struct NoProbeResults;

impl ProbeResults for NoProbeResults {
    fn liveness(&self, _: &str, _: &str) -> Option<bool> {
        None
    }
    fn startup(&self, _: &str, _: &str) -> Option<bool> {
        None
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether containers that failed are restarted.
pub fn restarts_on_failure(pod: &Pod) -> bool {
    restart_policy(pod) != "Never"
}

/// A sidecar: an init container that keeps running (restartPolicy Always).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
}

fn containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn succeeded(status: Option<&ContainerStatus>) -> bool {
    status.is_some_and(|s| s.state == ContainerState::Exited && s.exit_code == 0)
}

/// An init container that failed: OOM-killed, exited non-zero, or lost.
pub fn init_container_failed(s: &ContainerStatus) -> bool {
    s.reason == "OOMKilled"
        || (s.state == ContainerState::Exited && s.exit_code != 0)
        || s.state == ContainerState::Unknown
}

/// Whether a container that is not running should be started (upstream ShouldContainerBeRestarted).
pub fn should_restart(pod: &Pod, status: Option<&ContainerStatus>) -> bool {
    let Some(s) = status else { return true };
    match s.state {
        ContainerState::Running => false,
        ContainerState::Created | ContainerState::Unknown => true,
        ContainerState::Exited => match restart_policy(pod) {
            "Never" => false,
            "OnFailure" => s.exit_code != 0,
            _ => true,
        },
    }
}

/// Whether the pod needs a new sandbox, with the attempt number and the current sandbox id.
fn sandbox_changed(pod: &Pod, status: &PodRuntimeStatus) -> (bool, u32, Option<String>) {
    let Some(newest) = status.sandbox() else {
        return (true, 0, None);
    };
    let ready = status.sandboxes.iter().filter(|s| s.ready).count();
    let next = newest.attempt + 1;
    let id = Some(newest.id.clone());
    if ready > 1 || !newest.ready || newest.host_network != host_network(pod) {
        return (true, next, id);
    }
    if !host_network(pod) && newest.ips.is_empty() {
        return (true, next, id);
    }
    (false, newest.attempt, id)
}

fn kill(name: &str, message: String, grace: Option<Duration>) -> ContainerToKill {
    ContainerToKill {
        name: name.to_string(),
        message,
        grace,
    }
}

/// The probe's own grace period, when it sets one.
fn probe_grace(probe: Option<&Probe>) -> Option<Duration> {
    probe
        .and_then(|p| p.termination_grace_period_seconds)
        .map(|s| Duration::from_secs(s.max(0) as u64))
}

/// Init container progress (upstream computeInitContainerActions): fills the init containers to
/// start or kill, and says whether the pod has finished initializing.
fn init_container_actions(
    pod: &Pod,
    status: &PodRuntimeStatus,
    probes: &dyn ProbeResults,
    actions: &mut PodActions,
) -> bool {
    let inits = init_containers(pod);
    if inits.is_empty() {
        return true;
    }
    // A created or running app container means initialization completed some time ago.
    let mut initialized = containers(pod)
        .iter()
        .filter_map(|c| status.container(&c.name))
        .any(|s| matches!(s.state, ContainerState::Created | ContainerState::Running));
    let mut previously_initialized = initialized;
    let restart_on_failure = restarts_on_failure(pod);
    let mut to_start = Vec::new();

    for (i, c) in inits.iter().enumerate().rev() {
        let sidecar = is_sidecar(c);
        let Some(s) = status.container(&c.name) else {
            if previously_initialized && sidecar {
                to_start.push(i);
            }
            continue;
        };
        if previously_initialized && !sidecar {
            continue;
        }
        match s.state {
            // Created but never started: the runtime failed to start it; try again.
            ContainerState::Created => to_start.push(i),
            ContainerState::Running if sidecar => 'running: {
                if c.startup_probe.is_some() {
                    match probes.startup(uid(pod), &s.id) {
                        None => break 'running,
                        Some(false) => {
                            let msg = format!("Init container {} failed startup probe", c.name);
                            actions.containers_to_kill.insert(
                                s.id.clone(),
                                kill(&c.name, msg, probe_grace(c.startup_probe.as_ref())),
                            );
                            to_start.push(i);
                            break 'running;
                        }
                        Some(true) => {}
                    }
                }
                if i == inits.len() - 1 {
                    initialized = true;
                } else if !previously_initialized {
                    to_start.push(i + 1);
                }
                if !spec_unchanged(s, c) {
                    let msg = format!("Init container {} definition changed", c.name);
                    actions
                        .containers_to_kill
                        .insert(s.id.clone(), kill(&c.name, msg, None));
                    to_start.push(i);
                    break 'running;
                }
                if c.liveness_probe.is_some() && probes.liveness(uid(pod), &s.id) == Some(false) {
                    let msg = format!("Init container {} failed liveness probe", c.name);
                    actions.containers_to_kill.insert(
                        s.id.clone(),
                        kill(&c.name, msg, probe_grace(c.liveness_probe.as_ref())),
                    );
                    to_start.push(i);
                }
            }
            // An ordinary init container still running: wait for it.
            ContainerState::Running => {}
            ContainerState::Exited if sidecar => to_start.push(i),
            ContainerState::Exited => {
                if init_container_failed(s) {
                    if !restart_on_failure {
                        actions.kill_pod = true;
                        actions.init_containers_to_start.clear();
                        return false;
                    }
                    to_start.push(i);
                } else if i == inits.len() - 1 {
                    initialized = true;
                } else {
                    to_start.push(i + 1);
                }
            }
            ContainerState::Unknown => {
                if !sidecar && !restart_on_failure {
                    actions.kill_pod = true;
                    actions.init_containers_to_start.clear();
                    return false;
                }
                let msg = "Init container is in \"unknown\" state, try killing it before restart"
                    .to_string();
                actions
                    .containers_to_kill
                    .insert(s.id.clone(), kill(&c.name, msg, None));
                to_start.push(i);
            }
        }
        previously_initialized = true;
    }
    if !previously_initialized {
        to_start.push(0);
    }
    to_start.reverse();
    actions.init_containers_to_start = to_start;
    initialized
}

/// Computes the actions that bring the pod from `status` to its spec.
pub fn compute_pod_actions(
    pod: &Pod,
    status: &PodRuntimeStatus,
    probes: &dyn ProbeResults,
) -> PodActions {
    let (create_sandbox, attempt, sandbox_id) = sandbox_changed(pod, status);
    let mut actions = PodActions {
        kill_pod: create_sandbox,
        create_sandbox,
        sandbox_id,
        attempt,
        ..Default::default()
    };

    if create_sandbox {
        // A Never pod whose containers were created once is not run again in a new sandbox.
        if !restarts_on_failure(pod) && attempt != 0 && !status.containers.is_empty() {
            actions.create_sandbox = false;
            return actions;
        }
        let to_start: Vec<usize> = containers(pod)
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                !(restart_policy(pod) == "OnFailure" && succeeded(status.container(&c.name)))
            })
            .map(|(i, _)| i)
            .collect();
        // Nothing left to run: a finished pod gets no new sandbox.
        let app_created = containers(pod)
            .iter()
            .filter_map(|c| status.container(&c.name))
            .any(|s| s.state != ContainerState::Unknown);
        if to_start.is_empty() && (init_containers(pod).is_empty() || app_created) {
            actions.create_sandbox = false;
            return actions;
        }
        if !init_containers(pod).is_empty() {
            actions.init_containers_to_start = vec![0];
            return actions;
        }
        actions.containers_to_start = to_start;
        return actions;
    }

    // Ephemeral containers may start before initialization completes.
    actions.ephemeral_containers_to_start = crate::ephemeral::to_start(pod, status);
    if !init_container_actions(pod, status, probes, &mut actions) || actions.kill_pod {
        return actions;
    }

    let mut keep = 0;
    for (idx, c) in containers(pod).iter().enumerate() {
        let current = status.container(&c.name);
        let Some(s) = current.filter(|s| s.state == ContainerState::Running) else {
            if should_restart(pod, current) {
                actions.containers_to_start.push(idx);
                if let Some(s) = current.filter(|s| s.state == ContainerState::Unknown) {
                    let msg = format!(
                        "Container {} is in unknown state, will be restarted",
                        c.name
                    );
                    actions
                        .containers_to_kill
                        .insert(s.id.clone(), kill(&c.name, msg, None));
                }
            }
            continue;
        };
        let mut restart = restarts_on_failure(pod);
        let (message, grace) = if !spec_unchanged(s, c) {
            // A changed spec restarts the container whatever the restart policy says.
            restart = true;
            (format!("Container {} definition changed", c.name), None)
        } else if c.liveness_probe.is_some() && probes.liveness(uid(pod), &s.id) == Some(false) {
            (
                format!("Container {} failed liveness probe", c.name),
                probe_grace(c.liveness_probe.as_ref()),
            )
        } else if c.startup_probe.is_some() && probes.startup(uid(pod), &s.id) == Some(false) {
            (
                format!("Container {} failed startup probe", c.name),
                probe_grace(c.startup_probe.as_ref()),
            )
        } else {
            keep += 1;
            continue;
        };
        let message = if restart {
            actions.containers_to_start.push(idx);
            format!("{message}, will be restarted")
        } else {
            message
        };
        actions
            .containers_to_kill
            .insert(s.id.clone(), kill(&c.name, message, grace));
    }
    if keep == 0 && actions.containers_to_start.is_empty() {
        actions.kill_pod = true;
        // Sidecars must not keep a finished pod alive.
        actions.init_containers_to_start.clear();
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::container_hash;
    use crate::labels::ContainerInfo;
    use crate::runtime_status::SandboxStatus;
    use serde_json::json;

    fn pod(policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
        let c = |n: &&str| json!({"name": n, "image": format!("img-{n}")});
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": policy,
                     "initContainers": inits.iter().map(c).collect::<Vec<_>>(),
                     "containers": apps.iter().map(c).collect::<Vec<_>>()}
        }))
        .unwrap()
    }

    fn sandbox(ready: bool, attempt: u32) -> SandboxStatus {
        SandboxStatus {
            id: format!("sb{attempt}"),
            ready,
            attempt,
            created_at: attempt as i64,
            ips: vec!["10.88.0.2".into()],
            host_network: false,
        }
    }

    /// A container instance; `exit` None means running.
    fn ctr(pod: &Pod, name: &str, exit: Option<i32>, created_at: i64) -> ContainerStatus {
        let spec = pod.spec.as_ref().unwrap();
        let c = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .unwrap();
        ContainerStatus {
            id: format!("{name}-{created_at}"),
            sandbox_id: "sb0".into(),
            name: name.into(),
            state: if exit.is_some() {
                ContainerState::Exited
            } else {
                ContainerState::Running
            },
            created_at,
            started_at: created_at,
            finished_at: if exit.is_some() { created_at + 1 } else { 0 },
            exit_code: exit.unwrap_or(0),
            reason: String::new(),
            message: String::new(),
            image: String::new(),
            image_ref: String::new(),
            termination_message: None,
            info: ContainerInfo {
                container_name: name.into(),
                hash: container_hash(c),
                ..Default::default()
            },
        }
    }

    fn actions_of(p: &Pod, s: &PodRuntimeStatus) -> PodActions {
        compute_pod_actions(p, s, &NoProbeResults)
    }

    fn status(sandboxes: Vec<SandboxStatus>, containers: Vec<ContainerStatus>) -> PodRuntimeStatus {
        PodRuntimeStatus {
            uid: "u".into(),
            name: "p".into(),
            namespace: "default".into(),
            sandboxes,
            containers,
        }
    }

    #[test]
    fn new_pod_creates_sandbox_and_starts_everything() {
        let p = pod("Always", &[], &["a", "b"]);
        let a = actions_of(&p, &status(vec![], vec![]));
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.attempt, 0);
        assert_eq!(a.containers_to_start, vec![0, 1]);
    }

    #[test]
    fn running_pod_needs_nothing() {
        let p = pod("Always", &[], &["a"]);
        let a = actions_of(
            &p,
            &status(vec![sandbox(true, 0)], vec![ctr(&p, "a", None, 1)]),
        );
        assert_eq!(
            a,
            PodActions {
                sandbox_id: Some("sb0".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn restart_policy_table() {
        // (policy, exit code, restarted?)
        let table = [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 1, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ];
        for (policy, code, restarted) in table {
            let p = pod(policy, &[], &["a", "b"]);
            let st = status(
                vec![sandbox(true, 0)],
                vec![ctr(&p, "a", Some(code), 1), ctr(&p, "b", None, 1)],
            );
            let a = actions_of(&p, &st);
            assert_eq!(
                a.containers_to_start == vec![0],
                restarted,
                "{policy} exit {code}: {a:?}"
            );
            assert!(!a.kill_pod, "{policy} exit {code}");
        }
    }

    #[test]
    fn all_done_kills_the_pod() {
        let p = pod("Never", &[], &["a"]);
        let a = actions_of(
            &p,
            &status(vec![sandbox(true, 0)], vec![ctr(&p, "a", Some(0), 1)]),
        );
        assert!(a.kill_pod && !a.create_sandbox && a.containers_to_start.is_empty());
    }

    #[test]
    fn changed_spec_restarts_only_that_container() {
        let p = pod("Never", &[], &["a", "b"]);
        let mut changed = ctr(&p, "a", None, 1);
        // Started from another image: neither the hash nor what the runtime shows matches.
        changed.info.hash ^= 1;
        changed.image = "localhost/other:1".into();
        let a = actions_of(
            &p,
            &status(vec![sandbox(true, 0)], vec![changed, ctr(&p, "b", None, 1)]),
        );
        assert_eq!(a.containers_to_start, vec![0]);
        assert_eq!(a.containers_to_kill.keys().collect::<Vec<_>>(), vec!["a-1"]);
        assert!(!a.kill_pod);
    }

    #[test]
    fn dead_sandbox_is_recreated_with_next_attempt() {
        let p = pod("Always", &[], &["a"]);
        let a = actions_of(
            &p,
            &status(vec![sandbox(false, 0)], vec![ctr(&p, "a", Some(137), 1)]),
        );
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.attempt, 1);
        assert_eq!(a.containers_to_start, vec![0]);
    }

    #[test]
    fn dead_sandbox_of_never_pod_is_not_recreated() {
        let p = pod("Never", &[], &["a"]);
        let a = actions_of(
            &p,
            &status(vec![sandbox(false, 0)], vec![ctr(&p, "a", Some(137), 1)]),
        );
        assert!(a.kill_pod && !a.create_sandbox);
        // Before any container was created, a Never pod still gets its sandbox back.
        let a = actions_of(&p, &status(vec![sandbox(false, 0)], vec![]));
        assert!(a.create_sandbox);
    }

    #[test]
    fn on_failure_does_not_rerun_succeeded_containers_in_new_sandbox() {
        let p = pod("OnFailure", &[], &["a", "b"]);
        let st = status(
            vec![sandbox(false, 0)],
            vec![ctr(&p, "a", Some(0), 1), ctr(&p, "b", Some(1), 1)],
        );
        let a = actions_of(&p, &st);
        assert!(a.create_sandbox);
        assert_eq!(a.containers_to_start, vec![1]);
        let st = status(
            vec![sandbox(false, 0)],
            vec![ctr(&p, "a", Some(0), 1), ctr(&p, "b", Some(0), 1)],
        );
        assert!(!actions_of(&p, &st).create_sandbox);
    }

    #[test]
    fn two_ready_sandboxes_or_no_ip_recreate() {
        let p = pod("Always", &[], &["a"]);
        let a = actions_of(
            &p,
            &status(vec![sandbox(true, 1), sandbox(true, 0)], vec![]),
        );
        assert!(a.create_sandbox);
        assert_eq!(a.attempt, 2);
        let mut no_ip = sandbox(true, 0);
        no_ip.ips.clear();
        assert!(actions_of(&p, &status(vec![no_ip], vec![])).create_sandbox);
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        let p = pod("Always", &["i1", "i2"], &["a"]);
        let a = actions_of(&p, &status(vec![], vec![]));
        assert_eq!(
            (
                a.create_sandbox,
                a.init_containers_to_start.clone(),
                a.containers_to_start.len()
            ),
            (true, vec![0], 0)
        );

        let sb = || vec![sandbox(true, 0)];
        let a = actions_of(&p, &status(sb(), vec![ctr(&p, "i1", None, 1)]));
        assert_eq!(
            (
                a.init_containers_to_start.clone(),
                a.containers_to_start.len(),
                a.kill_pod
            ),
            (vec![], 0, false)
        );

        let a = actions_of(&p, &status(sb(), vec![ctr(&p, "i1", Some(0), 1)]));
        assert_eq!(a.init_containers_to_start, vec![1]);

        let a = actions_of(
            &p,
            &status(
                sb(),
                vec![ctr(&p, "i2", Some(0), 2), ctr(&p, "i1", Some(0), 1)],
            ),
        );
        assert_eq!(
            (
                a.init_containers_to_start.clone(),
                a.containers_to_start.clone()
            ),
            (vec![], vec![0])
        );
    }

    #[test]
    fn failed_init_container_retries_or_fails_the_pod() {
        let p = pod("Always", &["i1"], &["a"]);
        let st = status(vec![sandbox(true, 0)], vec![ctr(&p, "i1", Some(1), 1)]);
        assert_eq!(actions_of(&p, &st).init_containers_to_start, vec![0]);
        let p = pod("Never", &["i1"], &["a"]);
        let st = status(vec![sandbox(true, 0)], vec![ctr(&p, "i1", Some(1), 1)]);
        let a = actions_of(&p, &st);
        assert!(a.kill_pod && a.init_containers_to_start.is_empty());
    }

    fn with_sidecars(p: &mut Pod, names: &[&str]) {
        for c in p.spec.as_mut().unwrap().init_containers.as_mut().unwrap() {
            if names.contains(&c.name.as_str()) {
                c.restart_policy = Some("Always".into());
            }
        }
    }

    #[test]
    fn sidecars_start_in_order_and_keep_running() {
        let mut p = pod("Never", &["s1", "s2"], &["a"]);
        with_sidecars(&mut p, &["s1", "s2"]);
        let sb = || vec![sandbox(true, 0)];
        // s1 running (no startup probe: started) -> s2 next.
        let a = actions_of(&p, &status(sb(), vec![ctr(&p, "s1", None, 1)]));
        assert_eq!(
            (
                a.init_containers_to_start.clone(),
                a.containers_to_start.len()
            ),
            (vec![1], 0)
        );
        // Both running: initialized, the app starts.
        let a = actions_of(
            &p,
            &status(sb(), vec![ctr(&p, "s2", None, 2), ctr(&p, "s1", None, 1)]),
        );
        assert_eq!(
            (
                a.init_containers_to_start.clone(),
                a.containers_to_start.clone()
            ),
            (vec![], vec![0])
        );
        // A sidecar that exited is restarted even under restartPolicy Never, the app kept.
        let st = status(
            sb(),
            vec![
                ctr(&p, "a", None, 3),
                ctr(&p, "s2", Some(1), 2),
                ctr(&p, "s1", None, 1),
            ],
        );
        let a = actions_of(&p, &st);
        assert_eq!(
            (
                a.init_containers_to_start.clone(),
                a.containers_to_start.len(),
                a.kill_pod
            ),
            (vec![1], 0, false)
        );
        // The app finished under Never: the pod is done, sidecars are not restarted.
        let st = status(
            sb(),
            vec![
                ctr(&p, "a", Some(0), 3),
                ctr(&p, "s2", None, 2),
                ctr(&p, "s1", None, 1),
            ],
        );
        let a = actions_of(&p, &st);
        assert!(a.kill_pod && a.init_containers_to_start.is_empty());
    }

    struct Probes {
        liveness: Option<bool>,
        startup: Option<bool>,
    }
    impl ProbeResults for Probes {
        fn liveness(&self, _: &str, _: &str) -> Option<bool> {
            self.liveness
        }
        fn startup(&self, _: &str, _: &str) -> Option<bool> {
            self.startup
        }
    }

    #[test]
    fn a_sidecar_with_a_startup_probe_holds_the_next_until_started() {
        let mut p = pod("Always", &["s1"], &["a"]);
        with_sidecars(&mut p, &["s1"]);
        p.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0].startup_probe =
            Some(Default::default());
        let st = status(vec![sandbox(true, 0)], vec![ctr(&p, "s1", None, 1)]);
        let none = compute_pod_actions(
            &p,
            &st,
            &Probes {
                liveness: None,
                startup: None,
            },
        );
        assert!(none.containers_to_start.is_empty() && none.init_containers_to_start.is_empty());
        let ok = compute_pod_actions(
            &p,
            &st,
            &Probes {
                liveness: None,
                startup: Some(true),
            },
        );
        assert_eq!(ok.containers_to_start, vec![0]);
        let failed = compute_pod_actions(
            &p,
            &st,
            &Probes {
                liveness: None,
                startup: Some(false),
            },
        );
        assert_eq!(failed.init_containers_to_start, vec![0]);
        assert_eq!(
            failed.containers_to_kill["s1-1"].message,
            "Init container s1 failed startup probe"
        );
    }

    #[test]
    fn a_failed_liveness_probe_kills_and_restarts_per_policy() {
        for (policy, restarted) in [("Always", true), ("OnFailure", true), ("Never", false)] {
            let mut p = pod(policy, &[], &["a"]);
            let probe: Probe = serde_json::from_value(serde_json::json!({"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 3})).unwrap();
            p.spec.as_mut().unwrap().containers[0].liveness_probe = Some(probe);
            let st = status(vec![sandbox(true, 0)], vec![ctr(&p, "a", None, 1)]);
            let healthy = compute_pod_actions(
                &p,
                &st,
                &Probes {
                    liveness: Some(true),
                    startup: None,
                },
            );
            assert!(healthy.containers_to_kill.is_empty());
            let a = compute_pod_actions(
                &p,
                &st,
                &Probes {
                    liveness: Some(false),
                    startup: None,
                },
            );
            let k = &a.containers_to_kill["a-1"];
            assert_eq!(
                k.grace,
                Some(Duration::from_secs(3)),
                "the probe's own grace period"
            );
            assert_eq!(a.containers_to_start == vec![0], restarted, "{policy}");
            assert_eq!(
                k.message.ends_with("will be restarted"),
                restarted,
                "{}",
                k.message
            );
            assert_eq!(a.kill_pod, !restarted, "nothing left to run under Never");
        }
    }
}
