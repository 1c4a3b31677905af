//! Containers: CreateContainer ([`create`]), Start/Stop and the exit waiter ([`lifecycle`]),
//! RemoveContainer and rollback ([`remove`]), status and listing ([`status`]), and what acts on
//! a running container ([`exec`]). Each runs through its own monitor process, which outlives us.

mod create;
mod exec;
mod lifecycle;
mod remove;
mod status;

pub(crate) use create::create;
pub(crate) use exec::{ExecTarget, exec_sync, exec_target, reopen_log, running, update_resources};
pub(crate) use lifecycle::{record_exit, start, stop, watch_exit};
pub(crate) use remove::{remove, rollback};
pub(crate) use status::{list, status, to_cri_status};

use crate::records::ContainerRecord;
use crate::store::Entry;
use crate::{CgroupDriver, Inner, ServiceError, blocking};
use k8s_cri::v1::ContainerConfig;
use nix::sys::signal::Signal;
use runtime_monitor::{CreateCommand, Monitor, MonitorCgroup, MonitorConfig};
use runtime_oci::OciRuntime;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a SIGKILLed container may take to be reaped before we give up waiting.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// How often [`kill_and_delete`] sends SIGKILL again while it waits.
const KILL_RETRY: Duration = Duration::from_millis(200);

/// The containers of one sandbox.
pub(crate) fn of_sandbox(inner: &Inner, sandbox_id: &str) -> Vec<Arc<Entry<ContainerRecord>>> {
    inner
        .containers
        .entries()
        .into_iter()
        .filter(|e| e.get().sandbox_id == sandbox_id)
        .collect()
}

/// linux.cgroupsPath: `PARENT/ID` with cgroupfs; systemd's `SLICE:PREFIX:NAME` form otherwise.
pub(crate) fn cgroups_path(driver: CgroupDriver, parent: &str, id: &str) -> String {
    match driver {
        CgroupDriver::Cgroupfs => format!("{}/{id}", parent.trim_end_matches('/')),
        CgroupDriver::Systemd => format!("{parent}:kubelet-rs:{id}"),
    }
}

/// The monitor's own cgroup sits next to the container's: under the pod's cgroupfs parent, or
/// a scope in the pod's slice (runc's default slice when the pod names none).
fn monitor_cgroup(driver: CgroupDriver, parent: &str) -> MonitorCgroup {
    match driver {
        CgroupDriver::Cgroupfs => MonitorCgroup::Cgroupfs {
            parent: (!parent.is_empty()).then(|| parent.to_string()),
        },
        CgroupDriver::Systemd => MonitorCgroup::SystemdScope {
            slice: if parent.is_empty() {
                "system.slice"
            } else {
                parent
            }
            .to_string(),
        },
    }
}

/// What the monitor of container `id` is told.
pub(crate) fn monitor_config(
    inner: &Inner,
    oci: &OciRuntime,
    id: &str,
    log_path: Option<PathBuf>,
    config: &ContainerConfig,
    cgroup_parent: &str,
) -> MonitorConfig {
    let systemd = inner.options.cgroup_driver == CgroupDriver::Systemd;
    MonitorConfig {
        container_id: id.to_string(),
        bundle: inner.layout.container_dir(id),
        state_dir: inner.layout.monitor_dir(id),
        create: CreateCommand {
            binary: oci.binary.clone(),
            root: oci.root.clone(),
            global_args: if systemd {
                vec!["--systemd-cgroup".into()]
            } else {
                Vec::new()
            },
        },
        log_path,
        tty: config.tty,
        stdin: config.stdin,
        stdin_once: config.stdin_once,
        cgroup: monitor_cgroup(inner.options.cgroup_driver, cgroup_parent),
    }
}

/// Starts the monitor, which runs the OCI runtime's `create`. A failed create may leave the
/// container half-made in the OCI runtime: it is deleted, as containerd does. Blocking.
pub(crate) fn spawn_monitor(
    oci: &OciRuntime,
    binary: &Path,
    config: &MonitorConfig,
) -> Result<Monitor, ServiceError> {
    runtime_monitor::spawn(binary, config).map_err(|err| {
        if let Err(cleanup) = oci.delete(&config.container_id, true) {
            tracing::warn!(error = %cleanup, "deleting the container after a failed create");
        }
        err.into()
    })
}

/// Whether the container's processes live in a PID namespace it does not own (the pod's shared
/// one): its init dying does not take its other processes along, so signals go to all of them
/// (`kill --all`), as containerd does.
pub(crate) fn shares_pid_namespace(inner: &Inner, sandbox_id: &str) -> bool {
    inner
        .sandboxes
        .find(sandbox_id)
        .is_ok_and(|s| s.get().pause.is_some())
}

/// SIGKILL unless it has exited, wait until its monitor recorded the exit, then delete it
/// from the OCI runtime. Idempotent.
pub(crate) async fn kill_and_delete(
    oci: &OciRuntime,
    id: &str,
    state_dir: &Path,
    all: bool,
) -> Result<(), ServiceError> {
    if runtime_monitor::is_alive(state_dir) && runtime_monitor::read_exit(state_dir)?.is_none() {
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        loop {
            // Killed again at each retry: a create still under way in the monitor (cut off by a
            // crash, say) makes the OCI runtime refuse a kill until the container exists.
            kill(oci, id, Signal::SIGKILL, all).await;
            match tokio::time::timeout(KILL_RETRY, runtime_monitor::wait_exit(state_dir)).await {
                Ok(Ok(_)) => break,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "waiting for a killed container");
                    break;
                }
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(_) => {
                    tracing::warn!("a killed container was not reaped in time; deleting it");
                    break;
                }
            }
        }
    }
    let (oci, id) = (oci.clone(), id.to_string());
    blocking(move || Ok(oci.delete(&id, true)?)).await
}

/// Sends `signal` (to every process of the container with `all`); a container that already
/// exited makes the runtime fail, which is fine: the exit file is what callers wait for.
pub(crate) async fn kill(oci: &OciRuntime, id: &str, signal: Signal, all: bool) {
    let (oci, id) = (oci.clone(), id.to_string());
    let sent = blocking(move || Ok(oci.kill(&id, signal as i32, all)?)).await;
    if let Err(err) = sent {
        tracing::debug!(error = %err, ?signal, "kill refused (the container may have exited)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_paths_per_driver() {
        assert_eq!(
            cgroups_path(CgroupDriver::Cgroupfs, "/kubepods/podu1", "abc"),
            "/kubepods/podu1/abc"
        );
        assert_eq!(
            cgroups_path(CgroupDriver::Cgroupfs, "/kubepods/podu1/", "abc"),
            "/kubepods/podu1/abc"
        );
        assert_eq!(cgroups_path(CgroupDriver::Cgroupfs, "", "abc"), "/abc");
        assert_eq!(
            cgroups_path(CgroupDriver::Systemd, "kubepods-podu1.slice", "abc"),
            "kubepods-podu1.slice:kubelet-rs:abc"
        );
    }

    #[test]
    fn monitor_cgroups_per_driver() {
        assert_eq!(
            monitor_cgroup(CgroupDriver::Cgroupfs, "/kubepods/podu1"),
            MonitorCgroup::Cgroupfs {
                parent: Some("/kubepods/podu1".into())
            }
        );
        assert_eq!(
            monitor_cgroup(CgroupDriver::Cgroupfs, ""),
            MonitorCgroup::Cgroupfs { parent: None }
        );
        assert_eq!(
            monitor_cgroup(CgroupDriver::Systemd, "kubepods-podu1.slice"),
            MonitorCgroup::SystemdScope {
                slice: "kubepods-podu1.slice".into()
            }
        );
        assert_eq!(
            monitor_cgroup(CgroupDriver::Systemd, ""),
            MonitorCgroup::SystemdScope {
                slice: "system.slice".into()
            }
        );
    }
}
