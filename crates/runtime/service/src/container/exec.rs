//! What acts on a live container: ExecSync, UpdateContainerResources, ReopenContainerLog.

use crate::records::ContainerPhase;
use crate::{Inner, ServiceError, blocking};
use k8s_cri::v1::{ExecSyncResponse, LinuxContainerResources};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

fn not_running(id: &str, phase: ContainerPhase) -> ServiceError {
    ServiceError::FailedPrecondition(format!("container {id} is not running ({phase:?})"))
}

/// Runs `cmd` in the running container with its own process settings (user, env, cwd, caps),
/// capturing the output; `timeout` seconds, 0 = none.
pub(crate) async fn exec_sync(
    inner: &Arc<Inner>,
    id: &str,
    cmd: Vec<String>,
    timeout: i64,
) -> Result<ExecSyncResponse, ServiceError> {
    let record = inner.containers.find(id)?.get();
    if record.phase != ContainerPhase::Running {
        return Err(not_running(&record.id, record.phase));
    }
    if cmd.is_empty() {
        return Err(ServiceError::InvalidArgument("exec needs a command".into()));
    }
    let oci = inner.handlers.get(&record.runtime_handler)?.clone();
    let spec_path = inner.layout.container_dir(&record.id).join("config.json");
    let span = tracing::info_span!("container", op = "exec_sync", container_id = %record.id);
    let cid = record.id.clone();
    let output = blocking(move || {
        let bytes = std::fs::read(&spec_path).map_err(ServiceError::io("read", &spec_path))?;
        let spec: oci_spec::runtime::Spec = serde_json::from_slice(&bytes).map_err(|e| {
            ServiceError::Internal(format!(
                "the bundle spec {} is corrupt: {e}",
                spec_path.display()
            ))
        })?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(cmd));
        process.set_terminal(Some(false));
        let limit = u64::try_from(timeout)
            .ok()
            .filter(|t| *t > 0)
            .map(Duration::from_secs);
        oci.exec_sync(&cid, &process, limit)
            .map_err(|err| match err {
                runtime_oci::OciError::ExecTimeout { .. } => ServiceError::Timeout {
                    what: format!("exec in container {cid}"),
                    seconds: timeout,
                },
                other => other.into(),
            })
    })
    .instrument(span)
    .await?;
    Ok(ExecSyncResponse {
        stdout: output.stdout,
        stderr: output.stderr,
        exit_code: output.exit_code,
    })
}

/// Applies new resources through the OCI runtime and keeps them in the record (ContainerStatus
/// reports them).
pub(crate) async fn update_resources(
    inner: &Arc<Inner>,
    id: &str,
    resources: LinuxContainerResources,
) -> Result<(), ServiceError> {
    let entry = inner.containers.find(id)?;
    let span = tracing::info_span!("container", op = "update", container_id = %entry.get().id);
    async {
        let _op = entry.op.lock().await;
        let record = entry.get();
        if !matches!(
            record.phase,
            ContainerPhase::Created | ContainerPhase::Running
        ) {
            return Err(not_running(&record.id, record.phase));
        }
        let oci = inner.handlers.get(&record.runtime_handler)?.clone();
        let (cid, update) = (record.id.clone(), resources.clone());
        blocking(move || Ok(oci.update(&cid, &update)?)).await?;
        entry.update(|r| r.config.linux.get_or_insert_default().resources = Some(resources))?;
        Ok(())
    }
    .instrument(span)
    .await
}

/// Asks the monitor to reopen the log file (after the kubelet rotated it away).
pub(crate) async fn reopen_log(inner: &Arc<Inner>, id: &str) -> Result<(), ServiceError> {
    let record = inner.containers.find(id)?.get();
    if record.phase != ContainerPhase::Running {
        return Err(not_running(&record.id, record.phase));
    }
    let state_dir = inner.layout.monitor_dir(&record.id);
    blocking(move || Ok(runtime_monitor::reopen_log(&state_dir)?)).await
}
