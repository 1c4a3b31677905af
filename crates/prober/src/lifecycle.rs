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

    async fn exec(&self, container_id: &str, command: &[String]) -> Result<(), String> {
        let out = self
            .handlers
            .runtime()
            .exec_sync(container_id, command.to_vec(), Duration::ZERO)
            .await
            .map_err(|e| e.to_string())?;
        if out.exit_code == 0 {
            return Ok(());
        }
        let mut message = String::from_utf8_lossy(&out.stdout).into_owned();
        message.push_str(&String::from_utf8_lossy(&out.stderr));
        Err(format!(
            "command {command:?} exited with {}: {message}",
            out.exit_code
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
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        if let Some(exec) = &handler.exec {
            let command = exec.command.as_deref().unwrap_or_default();
            return self.exec(container_id, command).await.map_err(|e| {
                format!("Exec lifecycle hook ({command:?}) for Container {container_name:?} in Pod {pod_name:?} failed - error: {e}")
            });
        }
        if let Some(action) = &handler.http_get {
            return self.http(pod, container_name, pod_ip, action).await.map_err(|e| {
                format!("HTTP lifecycle hook ({}) for Container {container_name:?} in Pod {pod_name:?} failed - error: {e}", action.path.as_deref().unwrap_or("/"))
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
