//! Ephemeral containers (what `kubectl debug` adds through pods/ephemeralcontainers): each runs
//! once in the pod's sandbox, never restarted, optionally in a target container's process
//! namespace (upstream ephemeralContainerStartSpec and getTargetID).

use crate::runtime_status::{ContainerState, PodRuntimeStatus};
use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};
use kubelet_cri::api::{ContainerConfig, NamespaceMode};

/// The container an ephemeral container runs as: the same fields, without the target.
pub fn as_container(ec: &EphemeralContainer) -> Container {
    Container {
        args: ec.args.clone(),
        command: ec.command.clone(),
        env: ec.env.clone(),
        env_from: ec.env_from.clone(),
        image: ec.image.clone(),
        image_pull_policy: ec.image_pull_policy.clone(),
        lifecycle: ec.lifecycle.clone(),
        liveness_probe: ec.liveness_probe.clone(),
        name: ec.name.clone(),
        ports: ec.ports.clone(),
        readiness_probe: ec.readiness_probe.clone(),
        resize_policy: ec.resize_policy.clone(),
        resources: ec.resources.clone(),
        restart_policy: ec.restart_policy.clone(),
        security_context: ec.security_context.clone(),
        startup_probe: ec.startup_probe.clone(),
        stdin: ec.stdin,
        stdin_once: ec.stdin_once,
        termination_message_path: ec.termination_message_path.clone(),
        termination_message_policy: ec.termination_message_policy.clone(),
        tty: ec.tty,
        volume_devices: ec.volume_devices.clone(),
        volume_mounts: ec.volume_mounts.clone(),
        working_dir: ec.working_dir.clone(),
    }
}

/// The pod's ephemeral containers as containers, in spec order.
pub fn containers(pod: &Pod) -> Vec<Container> {
    ephemeral_specs(pod).iter().map(as_container).collect()
}

fn ephemeral_specs(pod: &Pod) -> &[EphemeralContainer] {
    pod.spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_deref())
        .unwrap_or_default()
}

/// Indexes into spec.ephemeralContainers of those never run: an ephemeral container with any
/// instance in the runtime, whatever its state, is not started again.
pub fn to_start(pod: &Pod, status: &PodRuntimeStatus) -> Vec<usize> {
    ephemeral_specs(pod)
        .iter()
        .enumerate()
        .filter(|(_, ec)| status.container(&ec.name).is_none())
        .map(|(i, _)| i)
        .collect()
}

/// The runtime id of the running container whose process namespace `ec` targets; `Ok(None)`
/// without a target. The error is upstream's message for a target that does not run.
pub fn target_id(
    ec: &EphemeralContainer,
    status: &PodRuntimeStatus,
) -> Result<Option<String>, String> {
    let Some(target) = ec
        .target_container_name
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    match status.container(target) {
        Some(s) if s.state == ContainerState::Running => Ok(Some(s.id.clone())),
        _ => Err(format!("unable to find target container {target}")),
    }
}

/// Puts the container in the target's process namespace where it would otherwise get its own:
/// a pod sharing one namespace (shareProcessNamespace, hostPID) keeps it (upstream
/// generateLinuxContainerConfig).
pub fn target_pid_namespace(config: &mut ContainerConfig, target_id: &str) {
    let options = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|sc| sc.namespace_options.as_mut());
    if let Some(ns) = options
        && ns.pid == NamespaceMode::Container as i32
    {
        ns.pid = NamespaceMode::Target as i32;
        ns.target_id = target_id.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::ContainerInfo;
    use crate::runtime_status::ContainerStatus;
    use kubelet_cri::api::{LinuxContainerConfig, LinuxContainerSecurityContext, NamespaceOption};
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "img"}],
                     "ephemeralContainers": [
                        {"name": "debug", "image": "img", "targetContainerName": "app",
                         "command": ["sh"], "stdin": true, "tty": true},
                        {"name": "plain", "image": "img"}]}
        }))
        .unwrap()
    }

    fn instance(name: &str, state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            id: format!("{name}-id"),
            sandbox_id: "sb".into(),
            name: name.into(),
            state,
            created_at: 1,
            started_at: 1,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: String::new(),
            image_ref: String::new(),
            termination_message: None,
            info: ContainerInfo::default(),
        }
    }

    fn status(containers: Vec<ContainerStatus>) -> PodRuntimeStatus {
        PodRuntimeStatus {
            uid: "u".into(),
            name: "p".into(),
            namespace: "default".into(),
            sandboxes: Vec::new(),
            containers,
        }
    }

    #[test]
    fn each_runs_once_whatever_became_of_it() {
        let p = pod();
        assert_eq!(to_start(&p, &status(vec![])), vec![0, 1]);
        let exited = status(vec![instance("debug", ContainerState::Exited)]);
        assert_eq!(to_start(&p, &exited), vec![1]);
    }

    #[test]
    fn the_container_keeps_every_field_but_the_target() {
        let c = &containers(&pod())[0];
        assert_eq!(
            (c.name.as_str(), c.command.clone(), c.stdin, c.tty),
            (
                "debug",
                Some(vec!["sh".to_string()]),
                Some(true),
                Some(true)
            )
        );
    }

    #[test]
    fn the_target_must_run() {
        let p = pod();
        let ec = &p
            .spec
            .as_ref()
            .unwrap()
            .ephemeral_containers
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            target_id(ec, &status(vec![])),
            Err("unable to find target container app".to_string())
        );
        let running = status(vec![instance("app", ContainerState::Running)]);
        assert_eq!(target_id(ec, &running), Ok(Some("app-id".to_string())));
        let plain = &p
            .spec
            .as_ref()
            .unwrap()
            .ephemeral_containers
            .as_ref()
            .unwrap()[1];
        assert_eq!(target_id(plain, &running), Ok(None));
    }

    fn config(pid: NamespaceMode) -> ContainerConfig {
        ContainerConfig {
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        pid: pid as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pid_of(c: &ContainerConfig) -> (i32, String) {
        let ns = c.linux.as_ref().unwrap().security_context.as_ref().unwrap();
        let ns = ns.namespace_options.as_ref().unwrap();
        (ns.pid, ns.target_id.clone())
    }

    #[test]
    fn only_a_private_pid_namespace_becomes_the_target() {
        let mut own = config(NamespaceMode::Container);
        target_pid_namespace(&mut own, "abc");
        assert_eq!(pid_of(&own), (NamespaceMode::Target as i32, "abc".into()));
        for shared in [NamespaceMode::Pod, NamespaceMode::Node] {
            let mut c = config(shared);
            target_pid_namespace(&mut c, "abc");
            assert_eq!(pid_of(&c), (shared as i32, String::new()));
        }
    }
}
