//! What acts on a live container: ExecSync (and the exec target streaming exec shares),
//! UpdateContainerResources, ReopenContainerLog.

use crate::records::{ContainerPhase, ContainerRecord};
use crate::{Inner, ServiceError, blocking};
use k8s_cri::v1::{ExecSyncResponse, LinuxContainerResources};
use oci_spec::runtime::Process;
use runtime_oci::OciRuntime;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

fn not_running(id: &str, phase: ContainerPhase) -> ServiceError {
    ServiceError::FailedPrecondition(format!("container {id} is not running ({phase:?})"))
}

/// What an exec in a running container runs: the container's OCI runtime and full id, and
/// its own process settings from the bundle (user, env, cwd, caps) with `cmd` as args.
pub(crate) struct ExecTarget {
    pub id: String,
    pub oci: OciRuntime,
    pub process: Process,
}

/// The record of container `id` (an id or prefix), which must be running.
pub(crate) fn running(inner: &Inner, id: &str) -> Result<ContainerRecord, ServiceError> {
    let record = inner.containers.find(id)?.get();
    if record.phase != ContainerPhase::Running {
        return Err(not_running(&record.id, record.phase));
    }
    Ok(record)
}

/// The [`ExecTarget`] for `cmd` in container `id` (an id or prefix), which must be running.
pub(crate) async fn exec_target(
    inner: &Arc<Inner>,
    id: &str,
    cmd: Vec<String>,
    tty: bool,
) -> Result<ExecTarget, ServiceError> {
    let record = running(inner, id)?;
    if cmd.is_empty() {
        return Err(ServiceError::InvalidArgument("exec needs a command".into()));
    }
    let oci = inner.handlers.get(&record.runtime_handler)?.clone();
    let spec_path = inner.layout.container_dir(&record.id).join("config.json");
    let process = blocking(move || {
        let bytes = std::fs::read(&spec_path).map_err(ServiceError::io("read", &spec_path))?;
        let spec: oci_spec::runtime::Spec = serde_json::from_slice(&bytes).map_err(|e| {
            ServiceError::Internal(format!(
                "the bundle spec {} is corrupt: {e}",
                spec_path.display()
            ))
        })?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(cmd));
        process.set_terminal(Some(tty));
        Ok(process)
    })
    .await?;
    Ok(ExecTarget {
        id: record.id,
        oci,
        process,
    })
}

/// Runs `cmd` in the running container, capturing the output; `timeout` seconds, 0 = none.
pub(crate) async fn exec_sync(
    inner: &Arc<Inner>,
    id: &str,
    cmd: Vec<String>,
    timeout: i64,
) -> Result<ExecSyncResponse, ServiceError> {
    let target = exec_target(inner, id, cmd, false).await?;
    let span = tracing::info_span!("container", op = "exec_sync", container_id = %target.id);
    let output = blocking(move || {
        let limit = u64::try_from(timeout)
            .ok()
            .filter(|t| *t > 0)
            .map(Duration::from_secs);
        let ExecTarget { id, oci, process } = target;
        oci.exec_sync(&id, &process, limit)
            .map_err(|err| match err {
                runtime_oci::OciError::ExecTimeout { .. } => ServiceError::Timeout {
                    what: format!("exec in container {id}"),
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
