//! What one sync must do, computed from the pod's spec and the runtime's view of it
//! (upstream computePodActions). Pure: the same inputs always give the same actions.

use crate::hash::container_hash;
use crate::runtime_status::{ContainerState, ContainerStatus, PodRuntimeStatus};
use k8s_openapi::api::core::v1::{Container, Pod};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerToKill {
    pub name: String,
    pub message: String,
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
    /// Index into spec.initContainers of the init container to start now.
    pub next_init_container: Option<usize>,
    /// Indexes into spec.containers of the containers to start.
    pub containers_to_start: Vec<usize>,
    /// Running containers to stop, by container id.
    pub containers_to_kill: BTreeMap<String, ContainerToKill>,
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

/// The init container to run next (upstream findNextInitContainerToRun), as
/// (the last failed status if any, index to start, all done).
fn next_init_container<'a>(
    pod: &Pod,
    status: &'a PodRuntimeStatus,
) -> (Option<&'a ContainerStatus>, Option<usize>, bool) {
    let inits = init_containers(pod);
    if inits.is_empty() {
        return (None, None, true);
    }
    // A running app container means initialization completed at some point.
    if containers(pod).iter().any(|c| {
        status
            .container(&c.name)
            .is_some_and(|s| s.state == ContainerState::Running)
    }) {
        return (None, None, true);
    }
    for (i, c) in inits.iter().enumerate().rev() {
        if let Some(s) = status
            .container(&c.name)
            .filter(|s| init_container_failed(s))
        {
            return (Some(s), Some(i), false);
        }
    }
    for (i, c) in inits.iter().enumerate().rev() {
        let Some(s) = status.container(&c.name) else {
            continue;
        };
        match s.state {
            ContainerState::Running => return (None, None, false),
            ContainerState::Exited if i == inits.len() - 1 => return (None, None, true),
            ContainerState::Exited => return (None, Some(i + 1), false),
            ContainerState::Created | ContainerState::Unknown => continue,
        }
    }
    (None, Some(0), false)
}

/// Computes the actions that bring the pod from `status` to its spec.
pub fn compute_pod_actions(pod: &Pod, status: &PodRuntimeStatus) -> PodActions {
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
        if to_start.is_empty() && next_init_container(pod, status).2 {
            actions.create_sandbox = false;
            return actions;
        }
        if !init_containers(pod).is_empty() {
            actions.next_init_container = Some(0);
            return actions;
        }
        actions.containers_to_start = to_start;
        return actions;
    }

    let (last_failed, next, done) = next_init_container(pod, status);
    if !done {
        if let Some(next) = next {
            if last_failed.is_some() && !restarts_on_failure(pod) {
                actions.kill_pod = true;
            } else {
                actions.next_init_container = Some(next);
            }
        }
        return actions;
    }

    let mut keep = 0;
    for (idx, c) in containers(pod).iter().enumerate() {
        let current = status.container(&c.name);
        match current {
            Some(s) if s.state == ContainerState::Running => {
                if s.hash() == container_hash(c) {
                    keep += 1;
                    continue;
                }
                // A changed spec restarts the container whatever the restart policy says.
                actions.containers_to_start.push(idx);
                actions.containers_to_kill.insert(
                    s.id.clone(),
                    ContainerToKill {
                        name: c.name.clone(),
                        message: format!(
                            "Container {} definition changed, will be restarted",
                            c.name
                        ),
                    },
                );
            }
            _ => {
                if should_restart(pod, current) {
                    actions.containers_to_start.push(idx);
                    if let Some(s) = current.filter(|s| s.state == ContainerState::Unknown) {
                        actions.containers_to_kill.insert(
                            s.id.clone(),
                            ContainerToKill {
                                name: c.name.clone(),
                                message: format!(
                                    "Container {} is in unknown state, will be restarted",
                                    c.name
                                ),
                            },
                        );
                    }
                }
            }
        }
    }
    if keep == 0 && actions.containers_to_start.is_empty() {
        actions.kill_pod = true;
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let a = compute_pod_actions(&p, &status(vec![], vec![]));
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.attempt, 0);
        assert_eq!(a.containers_to_start, vec![0, 1]);
    }

    #[test]
    fn running_pod_needs_nothing() {
        let p = pod("Always", &[], &["a"]);
        let a = compute_pod_actions(
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
            let a = compute_pod_actions(&p, &st);
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
        let a = compute_pod_actions(
            &p,
            &status(vec![sandbox(true, 0)], vec![ctr(&p, "a", Some(0), 1)]),
        );
        assert!(a.kill_pod && !a.create_sandbox && a.containers_to_start.is_empty());
    }

    #[test]
    fn changed_spec_restarts_only_that_container() {
        let p = pod("Never", &[], &["a", "b"]);
        let mut changed = ctr(&p, "a", None, 1);
        changed.info.hash ^= 1;
        let a = compute_pod_actions(
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
        let a = compute_pod_actions(
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
        let a = compute_pod_actions(
            &p,
            &status(vec![sandbox(false, 0)], vec![ctr(&p, "a", Some(137), 1)]),
        );
        assert!(a.kill_pod && !a.create_sandbox);
        // Before any container was created, a Never pod still gets its sandbox back.
        let a = compute_pod_actions(&p, &status(vec![sandbox(false, 0)], vec![]));
        assert!(a.create_sandbox);
    }

    #[test]
    fn on_failure_does_not_rerun_succeeded_containers_in_new_sandbox() {
        let p = pod("OnFailure", &[], &["a", "b"]);
        let st = status(
            vec![sandbox(false, 0)],
            vec![ctr(&p, "a", Some(0), 1), ctr(&p, "b", Some(1), 1)],
        );
        let a = compute_pod_actions(&p, &st);
        assert!(a.create_sandbox);
        assert_eq!(a.containers_to_start, vec![1]);
        let st = status(
            vec![sandbox(false, 0)],
            vec![ctr(&p, "a", Some(0), 1), ctr(&p, "b", Some(0), 1)],
        );
        assert!(!compute_pod_actions(&p, &st).create_sandbox);
    }

    #[test]
    fn two_ready_sandboxes_or_no_ip_recreate() {
        let p = pod("Always", &[], &["a"]);
        let a = compute_pod_actions(
            &p,
            &status(vec![sandbox(true, 1), sandbox(true, 0)], vec![]),
        );
        assert!(a.create_sandbox);
        assert_eq!(a.attempt, 2);
        let mut no_ip = sandbox(true, 0);
        no_ip.ips.clear();
        assert!(compute_pod_actions(&p, &status(vec![no_ip], vec![])).create_sandbox);
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        let p = pod("Always", &["i1", "i2"], &["a"]);
        let a = compute_pod_actions(&p, &status(vec![], vec![]));
        assert_eq!(
            (
                a.create_sandbox,
                a.next_init_container,
                a.containers_to_start.len()
            ),
            (true, Some(0), 0)
        );

        let sb = || vec![sandbox(true, 0)];
        let a = compute_pod_actions(&p, &status(sb(), vec![ctr(&p, "i1", None, 1)]));
        assert_eq!(
            (
                a.next_init_container,
                a.containers_to_start.len(),
                a.kill_pod
            ),
            (None, 0, false)
        );

        let a = compute_pod_actions(&p, &status(sb(), vec![ctr(&p, "i1", Some(0), 1)]));
        assert_eq!(a.next_init_container, Some(1));

        let a = compute_pod_actions(
            &p,
            &status(
                sb(),
                vec![ctr(&p, "i2", Some(0), 2), ctr(&p, "i1", Some(0), 1)],
            ),
        );
        assert_eq!(
            (a.next_init_container, a.containers_to_start.clone()),
            (None, vec![0])
        );
    }

    #[test]
    fn failed_init_container_retries_or_fails_the_pod() {
        let p = pod("Always", &["i1"], &["a"]);
        let st = status(vec![sandbox(true, 0)], vec![ctr(&p, "i1", Some(1), 1)]);
        assert_eq!(compute_pod_actions(&p, &st).next_init_container, Some(0));
        let p = pod("Never", &["i1"], &["a"]);
        let st = status(vec![sandbox(true, 0)], vec![ctr(&p, "i1", Some(1), 1)]);
        let a = compute_pod_actions(&p, &st);
        assert!(a.kill_pod && a.next_init_container.is_none());
    }
}
