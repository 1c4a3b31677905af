//! The exec handler (upstream pkg/probe/exec over the runtime's ExecSync).

use super::{HandlerError, Outcome, truncate_output};
use crate::types::ProbeResult;
use k8s_openapi::api::core::v1::Container;
use kubelet_cri::{CriError, RuntimeService};
use kubelet_kuberuntime::container_config::expansion::expand;
use std::collections::HashMap;
use std::time::Duration;

/// Runs `command` in the container with the probe's timeout. Exit code 0 is success, any other
/// is failure; a command that outlives its timeout fails (upstream ExecProbeTimeout, on since
/// 1.20). The output is stdout then stderr, cut at 10 KiB; other runtime errors are errors.
pub async fn probe(
    runtime: &dyn RuntimeService,
    container: &Container,
    container_id: &str,
    command: &[String],
    timeout: Duration,
) -> Result<Outcome, HandlerError> {
    let command = expand_static(command, container);
    match runtime
        .exec_sync(container_id, command.clone(), timeout)
        .await
    {
        Ok(response) => {
            let mut output = response.stdout;
            output.extend_from_slice(&response.stderr);
            let result = if response.exit_code == 0 {
                ProbeResult::Success
            } else {
                ProbeResult::Failure
            };
            Ok(Outcome {
                result,
                output: truncate_output(&output),
            })
        }
        Err(err) if is_timeout(&err) => Ok(Outcome {
            result: ProbeResult::Failure,
            output: format!("command {:?} timed out", command.join(" ")),
        }),
        Err(err) => Err(HandlerError::Exec(err)),
    }
}

/// Expands `$(VAR)` with the container's literal env values only (upstream
/// `ExpandContainerCommandOnlyStatic`): the probe has no access to valueFrom sources, which
/// count as empty.
fn expand_static(command: &[String], container: &Container) -> Vec<String> {
    let env: HashMap<&str, &str> = container
        .env
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|var| (var.name.as_str(), var.value.as_deref().unwrap_or_default()))
        .collect();
    command
        .iter()
        .map(|arg| expand(arg, |name| env.get(name).map(|v| v.to_string())))
        .collect()
}

/// The runtime's own deadline (containerd answers DeadlineExceeded) or the client's.
fn is_timeout(err: &CriError) -> bool {
    match err {
        CriError::Timeout { .. } => true,
        CriError::Rpc { code, .. } => *code == tonic::Code::DeadlineExceeded,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

    #[test]
    fn expands_only_literal_env_values() {
        let container = Container {
            name: "app".into(),
            env: Some(vec![
                EnvVar {
                    name: "FILE".into(),
                    value: Some("/tmp/healthy".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "NODE".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "spec.nodeName".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let command = ["cat", "$(FILE)", "[$(NODE)]", "$$(FILE)", "$(UNSET)"].map(String::from);
        assert_eq!(
            expand_static(&command, &container),
            ["cat", "/tmp/healthy", "[]", "$(FILE)", "$(UNSET)"]
        );
    }
}
