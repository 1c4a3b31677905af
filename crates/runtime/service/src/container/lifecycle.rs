//! StartContainer, StopContainer and the exit waiter that turns a monitor's exit file into the
//! container's Exited state and a CONTAINER_STOPPED event.

use super::{KILL_WAIT, kill, shares_pid_namespace};
use crate::reason::{ERROR, START_ERROR, UNKNOWN_EXIT_CODE, exit_reason};
use crate::records::{ContainerPhase, ContainerRecord};
use crate::store::Entry;
use crate::{Inner, ServiceError, blocking, events, now_ns};
use k8s_cri::v1::ContainerEventType;
use nix::sys::signal::Signal;
use runtime_monitor::{ExitInfo, MonitorError};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// containerd's exit code for a container whose start failed.
const START_ERROR_EXIT_CODE: i32 = 128;

fn span(id: &str, op: &'static str) -> tracing::Span {
    tracing::info_span!("container", op, container_id = %id)
}

pub(crate) async fn start(inner: &Arc<Inner>, id: &str) -> Result<(), ServiceError> {
    let entry = inner.containers.find(id)?;
    let record = entry.get();
    async {
        let _op = entry.op.lock().await;
        let record = entry.get();
        if record.phase != ContainerPhase::Created {
            return Err(ServiceError::FailedPrecondition(format!(
                "container {} is {:?}, not Created",
                record.id, record.phase
            )));
        }
        let oci = inner.handlers.get(&record.runtime_handler)?.clone();
        let cid = record.id.clone();
        if let Err(err) = blocking(move || Ok(oci.start(&cid)?)).await {
            tracing::warn!(error = %err, "starting the container failed");
            entry.update(|r| {
                r.phase = ContainerPhase::Exited;
                r.finished_at = now_ns();
                r.exit_code = START_ERROR_EXIT_CODE;
                r.reason = START_ERROR.into();
                r.message = err.to_string();
            })?;
            events::container_event(
                inner,
                &entry.get(),
                ContainerEventType::ContainerStoppedEvent,
            );
            return Err(err);
        }
        entry.update(|r| {
            r.phase = ContainerPhase::Running;
            r.started_at = now_ns();
        })?;
        tracing::info!(pid = record.pid, "container started");
        events::container_event(
            inner,
            &entry.get(),
            ContainerEventType::ContainerStartedEvent,
        );
        watch_exit(inner, &entry);
        Ok(())
    }
    .instrument(span(&record.id, "start"))
    .await
}

/// StopContainer: the image's StopSignal (else SIGTERM), `timeout` seconds of grace, then
/// SIGKILL. A missing or exited container is stopped already.
pub(crate) async fn stop(inner: &Arc<Inner>, id: &str, timeout: i64) -> Result<(), ServiceError> {
    let Some(entry) = inner.containers.find_opt(id)? else {
        tracing::debug!(
            container_id = id,
            "stop of a missing container: nothing to do"
        );
        return Ok(());
    };
    let record = entry.get();
    async {
        let _op = entry.op.lock().await;
        let record = entry.get();
        if matches!(
            record.phase,
            ContainerPhase::Exited | ContainerPhase::Creating
        ) {
            return Ok(());
        }
        let oci = inner.handlers.get(&record.runtime_handler)?.clone();
        let state_dir = inner.layout.monitor_dir(&record.id);
        let all = shares_pid_namespace(inner, &record.sandbox_id);
        if timeout > 0 && record.phase == ContainerPhase::Running {
            let signal = stop_signal(record.stop_signal.as_deref());
            tracing::info!(?signal, timeout, "stopping the container");
            // The stop signal goes to the init alone, which may want to shut its children down.
            kill(&oci, &record.id, signal, false).await;
            let grace = Duration::from_secs(timeout as u64);
            if let Ok(exit) =
                tokio::time::timeout(grace, runtime_monitor::wait_exit(&state_dir)).await
            {
                record_exit(inner, &entry, exit);
                return Ok(());
            }
            tracing::info!("grace period over; killing the container");
        }
        kill(&oci, &record.id, Signal::SIGKILL, all).await;
        match tokio::time::timeout(KILL_WAIT, runtime_monitor::wait_exit(&state_dir)).await {
            Ok(exit) => {
                record_exit(inner, &entry, exit);
                Ok(())
            }
            Err(_) => Err(ServiceError::Timeout {
                what: format!("waiting for container {} to die after SIGKILL", record.id),
                seconds: KILL_WAIT.as_secs() as i64,
            }),
        }
    }
    .instrument(span(&record.id, "stop"))
    .await
}

/// The signal an image's StopSignal names ("SIGQUIT", "QUIT" or "3"); SIGTERM when it names
/// none or one we do not know.
pub(crate) fn stop_signal(name: Option<&str>) -> Signal {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Signal::SIGTERM;
    };
    let parsed = match name.parse::<i32>() {
        Ok(number) => Signal::try_from(number).ok(),
        Err(_) => {
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            Signal::from_str(&full).ok()
        }
    };
    parsed.unwrap_or_else(|| {
        tracing::warn!(stop_signal = name, "unknown stop signal; using SIGTERM");
        Signal::SIGTERM
    })
}

/// Records the container's exit once (later calls for the same exit change nothing) and emits
/// CONTAINER_STOPPED. A monitor gone without an exit file leaves the code unknown.
pub(crate) fn record_exit(
    inner: &Inner,
    entry: &Entry<ContainerRecord>,
    exit: Result<ExitInfo, MonitorError>,
) {
    let (code, finished_at, reason, message) = match exit {
        Ok(exit) => (
            exit.code,
            exit.finished_at_ns,
            exit_reason(exit.code, exit.oom_killed),
            String::new(),
        ),
        Err(err) => (
            UNKNOWN_EXIT_CODE,
            now_ns(),
            ERROR,
            format!("the container's monitor was lost, its exit code is unknown: {err}"),
        ),
    };
    let changed = entry.update(|r| {
        if r.phase == ContainerPhase::Exited {
            return false;
        }
        r.phase = ContainerPhase::Exited;
        r.exit_code = code;
        r.finished_at = finished_at;
        r.reason = reason.to_string();
        r.message = message.clone();
        true
    });
    match changed {
        Ok(true) => {
            tracing::info!(
                container_id = entry.get().id,
                exit_code = code,
                reason,
                "container exited"
            );
            events::container_event(
                inner,
                &entry.get(),
                ContainerEventType::ContainerStoppedEvent,
            );
        }
        Ok(false) => {}
        // Removed meanwhile: nothing left to record.
        Err(ServiceError::NotFound { .. }) => {}
        Err(err) => tracing::error!(error = %err, "cannot record the container's exit"),
    }
}

/// Waits in the background for the container's exit and records it. The task holds the
/// runtime only weakly and ends when the runtime is dropped.
pub(crate) fn watch_exit(inner: &Arc<Inner>, entry: &Arc<Entry<ContainerRecord>>) {
    let weak = Arc::downgrade(inner);
    let mut alive = inner.alive.subscribe();
    let entry = entry.clone();
    let id = entry.get().id;
    let state_dir = inner.layout.monitor_dir(&id);
    tokio::spawn(
        async move {
            tokio::select! {
                exit = runtime_monitor::wait_exit(&state_dir) => {
                    if let Some(inner) = weak.upgrade() {
                        // After any stop or remove under way, which record the exit themselves:
                        // so the STOPPED event never trails that remove's DELETED.
                        let _op = entry.op.lock().await;
                        record_exit(&inner, &entry, exit);
                    }
                }
                _ = alive.changed() => {}
            }
        }
        .instrument(span(&id, "wait_exit")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_by_name_or_number() {
        assert_eq!(stop_signal(None), Signal::SIGTERM);
        assert_eq!(stop_signal(Some("")), Signal::SIGTERM);
        assert_eq!(stop_signal(Some("SIGINT")), Signal::SIGINT);
        assert_eq!(stop_signal(Some("quit")), Signal::SIGQUIT);
        assert_eq!(stop_signal(Some("9")), Signal::SIGKILL);
        assert_eq!(stop_signal(Some("SIGBOGUS")), Signal::SIGTERM);
    }
}
