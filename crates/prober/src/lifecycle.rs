//! Lifecycle hook handlers (upstream pkg/kubelet/lifecycle/handlers.go): exec through CRI with no
//! timeout of its own, an HTTP GET whose status code does not matter, and sleep. The runtime
//! manager decides when they run and bounds preStop by the grace period.

use crate::handlers::Handlers;
use crate::handlers::http::build_request;
use k8s_openapi::api::core::v1::{HTTPGetAction, LifecycleHandler, Pod};
use kubelet_kuberuntime::hooks::HookRunner;
use std::time::Duration;

/// An HTTP hook has no deadline upstream; this bound only keeps a dead peer from pinning a worker.
const HTTP_HOOK_TIMEOUT: Duration = Duration::from_secs(3600);

pub struct LifecycleHandlers {
    handlers: Handlers,
}

impl LifecycleHandlers {
    pub fn new(handlers: Handlers) -> Self {
        Self { handlers }
    }

    /// Runs the command; on failure, upstream's error (RunInContainer's) and the output.
    async fn exec(&self, container_id: &str, command: &[String]) -> Result<(), (String, String)> {
        let out = self
            .handlers
            .runtime()
            .exec_sync(container_id, command.to_vec(), Duration::ZERO)
            .await
            .map_err(|e| (e.to_string(), String::new()))?;
        if out.exit_code == 0 {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error = format!(
            "command '{}' exited with {}: {stderr}",
            command.join(" "),
            out.exit_code
        );
        Err((
            error,
            format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)),
        ))
    }

    async fn http(
        &self,
        pod: &Pod,
        container_name: &str,
        pod_ip: Option<&str>,
        action: &HTTPGetAction,
    ) -> Result<(), String> {
        let container = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == container_name)
            .ok_or_else(|| format!("container {container_name:?} is not in the pod spec"))?;
        let request = build_request(action, container, pod_ip).map_err(|e| e.to_string())?;
        self.handlers.http().get(&request, HTTP_HOOK_TIMEOUT).await
    }
}

#[async_trait::async_trait]
impl HookRunner for LifecycleHandlers {
    async fn run(
        &self,
        pod: &Pod,
        container_name: &str,
        container_id: &str,
        pod_ip: Option<&str>,
        handler: &LifecycleHandler,
    ) -> Result<(), String> {
        // Upstream's format.Pod: name_namespace(uid).
        let pod_name = format!(
            "{}_{}({})",
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default()
        );
        if let Some(exec) = &handler.exec {
            let command = exec.command.as_deref().unwrap_or_default();
            return self.exec(container_id, command).await.map_err(|(error, output)| {
                format!(
                    "Exec lifecycle hook ([{}]) for Container {container_name:?} in Pod {pod_name:?} failed - error: {error}, message: {output:?}",
                    command.join(" ")
                )
            });
        }
        if let Some(action) = &handler.http_get {
            return self.http(pod, container_name, pod_ip, action).await.map_err(|e| {
                format!("HTTP lifecycle hook ({}) for Container {container_name:?} in Pod {pod_name:?} failed - error: {e}", action.path.as_deref().unwrap_or_default())
            });
        }
        if let Some(sleep) = &handler.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
            return Ok(());
        }
        Err(format!(
            "lifecycle hook for Container {container_name:?} in Pod {pod_name:?} has no handler (exec, httpGet or sleep)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ExecAction;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kubelet_cri::RuntimeService;
    use kubelet_cri::api::{
        ContainerConfig, ContainerMetadata, ExecSyncResponse, ImageSpec, PodSandboxConfig,
        PodSandboxMetadata,
    };
    use kubelet_cri::fake::FakeRuntime;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_failed_exec_hook_reads_as_upstream_s_event() {
        let fake = FakeRuntime::new();
        let image = ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        };
        fake.add_image("busybox");
        let sandbox = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        let pod_id = fake.run_pod_sandbox(sandbox.clone(), "").await.unwrap();
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "app".into(),
                attempt: 0,
            }),
            image: Some(image),
            ..Default::default()
        };
        let id = fake
            .create_container(&pod_id, config, sandbox)
            .await
            .unwrap();
        fake.start_container(&id).await.unwrap();
        fake.set_exec_result(
            "app",
            ExecSyncResponse {
                stdout: b"out\n".to_vec(),
                stderr: b"err\n".to_vec(),
                exit_code: 1,
            },
        );
        let hooks = LifecycleHandlers::new(Handlers::new(Arc::new(fake)));
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let handler = LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), "exit 1".into()]),
            }),
            ..Default::default()
        };
        let message = hooks
            .run(&pod, "app", &id, None, &handler)
            .await
            .unwrap_err();
        assert_eq!(
            message,
            "Exec lifecycle hook ([sh -c exit 1]) for Container \"app\" in Pod \"web_default(u1)\" failed - error: command 'sh -c exit 1' exited with 1: err\n, message: \"out\\nerr\\n\""
        );
    }
}
