//! The conditions the kubelet owns, with upstream's reasons and messages (status/generate.go:
//! GeneratePodInitializedCondition, GenerateContainersReadyCondition, GeneratePodReadyCondition).

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodCondition};
use kubelet_kuberuntime::actions::is_sidecar;

use super::generate::{FAILED, SUCCEEDED};

/// A condition's status, reason and message, before its transition time is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
}

impl Verdict {
    fn yes() -> Verdict {
        Verdict {
            ok: true,
            reason: None,
            message: None,
        }
    }

    fn yes_because(reason: &'static str) -> Verdict {
        Verdict {
            reason: Some(reason),
            ..Verdict::yes()
        }
    }

    fn no(reason: &'static str, message: Option<String>) -> Verdict {
        Verdict {
            ok: false,
            reason: Some(reason),
            message,
        }
    }
}

/// Go's `%s` of a []string, which upstream's messages use: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn started(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
}

/// Initialized: every ordinary init container succeeded (its status is ready) and every sidecar
/// has started; true for good once any app container has started.
pub fn initialized(
    specs: &[Container],
    inits: &[ContainerStatus],
    apps: &[ContainerStatus],
    phase: &str,
) -> Verdict {
    if specs.is_empty() {
        return Verdict::yes();
    }
    if phase == SUCCEEDED {
        return Verdict::yes_because("PodCompleted");
    }
    if apps.iter().any(started) {
        return Verdict::yes();
    }
    let incomplete: Vec<&str> = specs
        .iter()
        .zip(inits)
        .filter(|(c, s)| {
            if is_sidecar(c) {
                s.started != Some(true)
            } else {
                !s.ready
            }
        })
        .map(|(c, _)| c.name.as_str())
        .collect();
    if incomplete.is_empty() {
        return Verdict::yes();
    }
    Verdict::no(
        "ContainersNotInitialized",
        Some(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        )),
    )
}

/// ContainersReady: every app container and every sidecar is ready.
pub fn containers_ready(
    init_specs: &[Container],
    inits: &[ContainerStatus],
    apps: &[ContainerStatus],
    phase: &str,
) -> Verdict {
    match phase {
        SUCCEEDED => return Verdict::no("PodCompleted", None),
        FAILED => return Verdict::no("PodFailed", None),
        _ => {}
    }
    let sidecars = init_specs
        .iter()
        .zip(inits)
        .filter(|(c, _)| is_sidecar(c))
        .map(|(_, s)| s);
    let unready: Vec<&str> = sidecars
        .chain(apps)
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    if unready.is_empty() {
        return Verdict::yes();
    }
    Verdict::no(
        "ContainersNotReady",
        Some(format!(
            "containers with unready status: {}",
            go_list(&unready)
        )),
    )
}

/// Ready: ContainersReady, and every readiness gate's condition (set by others through the
/// pod status API, found in `others`) True.
pub fn ready(pod: &Pod, containers: &Verdict, others: &[PodCondition]) -> Verdict {
    if !containers.ok {
        return containers.clone();
    }
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    let unready: Vec<String> = gates
        .iter()
        .filter_map(|gate| {
            let kind = &gate.condition_type;
            match others.iter().find(|c| &c.type_ == kind) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {kind:?} does not exist."
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate {kind:?} is not \"True\", but {}",
                    c.status
                )),
                Some(_) => None,
            }
        })
        .collect();
    if unready.is_empty() {
        return Verdict::yes();
    }
    Verdict::no("ReadinessGatesNotReady", Some(unready.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, PodReadinessGate};
    use serde_json::json;

    fn container(name: &str, sidecar: bool) -> Container {
        Container {
            name: name.into(),
            restart_policy: sidecar.then(|| "Always".into()),
            ..Default::default()
        }
    }

    fn status(name: &str, ready: bool, running: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready,
            started: Some(running),
            state: running.then(|| ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn initialized_names_the_incomplete_init_containers() {
        let specs = [container("init1", false), container("init2", false)];
        let inits = [status("init1", false, false), status("init2", false, false)];
        let apps = [status("app", false, false)];
        assert_eq!(
            initialized(&specs, &inits, &apps, "Pending"),
            Verdict::no(
                "ContainersNotInitialized",
                Some("containers with incomplete status: [init1 init2]".into())
            )
        );
        let done = [status("init1", true, false), status("init2", true, false)];
        assert_eq!(initialized(&specs, &done, &apps, "Pending"), Verdict::yes());
        assert_eq!(
            initialized(&specs, &inits, &apps, SUCCEEDED),
            Verdict::yes_because("PodCompleted")
        );
        // An app container that started means the pod was initialized once.
        let running = [status("app", false, true)];
        assert_eq!(
            initialized(&specs, &inits, &running, "Running"),
            Verdict::yes()
        );
        assert_eq!(initialized(&[], &[], &apps, "Pending"), Verdict::yes());
    }

    #[test]
    fn a_sidecar_counts_as_initialized_once_started_and_for_readiness() {
        let specs = [container("proxy", true)];
        let not_started = [status("proxy", false, false)];
        let apps = [status("app", true, false)];
        assert_eq!(
            initialized(&specs, &not_started, &apps, "Pending").message,
            Some("containers with incomplete status: [proxy]".into())
        );
        let started = [status("proxy", false, true)];
        assert!(initialized(&specs, &started, &apps, "Pending").ok);
        assert_eq!(
            containers_ready(&specs, &started, &apps, "Running"),
            Verdict::no(
                "ContainersNotReady",
                Some("containers with unready status: [proxy]".into())
            )
        );
    }

    #[test]
    fn containers_ready_in_each_phase() {
        let apps = [status("a", true, true), status("b", false, true)];
        assert_eq!(
            containers_ready(&[], &[], &apps, "Running"),
            Verdict::no(
                "ContainersNotReady",
                Some("containers with unready status: [b]".into())
            )
        );
        assert_eq!(
            containers_ready(&[], &[], &apps, SUCCEEDED),
            Verdict::no("PodCompleted", None)
        );
        assert_eq!(
            containers_ready(&[], &[], &apps, FAILED),
            Verdict::no("PodFailed", None)
        );
        assert!(containers_ready(&[], &[], &apps[..1], "Running").ok);
    }

    #[test]
    fn readiness_gates_hold_ready_back() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]}
        }))
        .unwrap();
        pod.spec.as_mut().unwrap().readiness_gates = Some(vec![
            PodReadinessGate {
                condition_type: "example.com/lb".into(),
            },
            PodReadinessGate {
                condition_type: "example.com/dns".into(),
            },
        ]);
        let others = [PodCondition {
            type_: "example.com/lb".into(),
            status: "False".into(),
            ..Default::default()
        }];
        assert_eq!(
            ready(&pod, &Verdict::yes(), &others),
            Verdict::no(
                "ReadinessGatesNotReady",
                Some(
                    "the status of pod readiness gate \"example.com/lb\" is not \"True\", but False, corresponding condition of pod readiness gate \"example.com/dns\" does not exist."
                        .into()
                )
            )
        );
        let both = [
            PodCondition {
                type_: "example.com/lb".into(),
                status: "True".into(),
                ..Default::default()
            },
            PodCondition {
                type_: "example.com/dns".into(),
                status: "True".into(),
                ..Default::default()
            },
        ];
        assert_eq!(ready(&pod, &Verdict::yes(), &both), Verdict::yes());
        // Containers not ready: Ready says what ContainersReady says.
        let unready = Verdict::no("ContainersNotReady", Some("x".into()));
        assert_eq!(ready(&pod, &unready, &both), unready);
    }
}
