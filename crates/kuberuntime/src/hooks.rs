//! Lifecycle hooks (postStart, preStop). The runtime manager decides when they run; how a
//! handler runs (exec through CRI, an HTTP GET, a sleep) is the prober's craft, plugged in here.

use k8s_openapi::api::core::v1::{LifecycleHandler, Pod};

/// Upstream's waiting reason of a container whose postStart hook failed.
pub const POST_START_HOOK_ERROR: &str = "PostStartHookError";
pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";

#[async_trait::async_trait]
pub trait HookRunner: Send + Sync + 'static {
    /// Runs `handler` for the container; the error is the message for the event.
    async fn run(
        &self,
        pod: &Pod,
        container_name: &str,
        container_id: &str,
        pod_ip: Option<&str>,
        handler: &LifecycleHandler,
    ) -> Result<(), String>;
}
