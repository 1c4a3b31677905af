//! Restart recovery: the records on disk, the monitors still running and the exit files they
//! left give back the state the previous instance had (containerd's restart.go table). A create
//! that was cut off is rolled back, an exit that happened while we were down is recorded, a
//! running container gets its exit waiter again, and nothing is restarted. Directories that
//! belong to no record are removed last.

use crate::records::{ContainerPhase, ContainerRecord, SandboxPhase, SandboxRecord};
use crate::{Inner, ServiceError, blocking, container, fsutil, now_ns, sandbox};
use runtime_monitor::{ExitInfo, MonitorError};
use runtime_oci::OciStatus;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// What becomes of a container record found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContainerFate {
    /// CreateContainer never finished.
    RollBack,
    /// Nothing to do: created and its monitor waiting, or exited already.
    Keep,
    /// Running with a live monitor: wait for its exit again.
    Watch,
    /// Recorded Created, but a StartContainer cut off by the crash went through: the OCI
    /// runtime runs it. Recorded Running (or the kubelet would start a second copy), then watched.
    Started,
    /// It exited while we were down.
    Exited(ExitInfo),
    /// Monitor and container gone without an exit file.
    Lost,
}

pub(crate) fn container_fate(
    phase: ContainerPhase,
    monitor_alive: bool,
    exit: Option<ExitInfo>,
) -> ContainerFate {
    match (phase, exit, monitor_alive) {
        (ContainerPhase::Creating, _, _) => ContainerFate::RollBack,
        (ContainerPhase::Exited, _, _) => ContainerFate::Keep,
        (_, Some(exit), _) => ContainerFate::Exited(exit),
        (ContainerPhase::Running, None, true) => ContainerFate::Watch,
        (ContainerPhase::Created, None, true) => ContainerFate::Keep,
        (_, None, false) => ContainerFate::Lost,
    }
}

/// What becomes of a sandbox record found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SandboxFate {
    RollBack,
    Keep,
    /// Ready before, but its pinned namespaces or its init are gone (a reboot cleared the state
    /// dir, say): NotReady, so the kubelet makes a new one.
    NotReady,
}

pub(crate) fn sandbox_fate(
    phase: SandboxPhase,
    pins_present: bool,
    init_alive: bool,
) -> SandboxFate {
    match phase {
        SandboxPhase::Creating => SandboxFate::RollBack,
        SandboxPhase::Ready if !pins_present || !init_alive => SandboxFate::NotReady,
        _ => SandboxFate::Keep,
    }
}

pub(crate) async fn recover(inner: &Arc<Inner>) -> Result<(), ServiceError> {
    for record in inner.sandboxes.load()? {
        let fate = sandbox_fate(
            record.phase,
            pins_present(&record),
            record
                .pause
                .as_ref()
                .is_none_or(|p| runtime_monitor::is_alive(&inner.layout.monitor_dir(&p.id))),
        );
        if let Err(err) = inner.names.reserve(&record.name, &record.id) {
            tracing::error!(sandbox_id = record.id, error = %err, "sandbox name taken twice");
        }
        let entry = inner.sandboxes.adopt(record);
        tracing::info!(sandbox_id = entry.get().id, ?fate, "recovering pod sandbox");
        let outcome = match fate {
            SandboxFate::Keep => Ok(()),
            SandboxFate::NotReady => entry.update(|r| r.phase = SandboxPhase::NotReady),
            SandboxFate::RollBack => sandbox::rollback(inner, &entry).await,
        };
        if let Err(err) = outcome {
            tracing::error!(sandbox_id = entry.get().id, error = %err, "recovering a pod sandbox failed");
        }
    }
    let sandbox_ids: HashSet<String> = inner
        .sandboxes
        .snapshot()
        .into_iter()
        .map(|r| r.id)
        .collect();
    for record in inner.containers.load()? {
        let state_dir = inner.layout.monitor_dir(&record.id);
        let exit = runtime_monitor::read_exit(&state_dir).unwrap_or_else(|err| {
            tracing::warn!(container_id = record.id, error = %err, "unreadable exit file");
            None
        });
        let mut fate = container_fate(record.phase, runtime_monitor::is_alive(&state_dir), exit);
        if fate == ContainerFate::Keep
            && record.phase == ContainerPhase::Created
            && started_while_down(inner, &record).await
        {
            fate = ContainerFate::Started;
        }
        if !sandbox_ids.contains(&record.sandbox_id) {
            // Its sandbox is gone: nothing can use it any more.
            fate = ContainerFate::RollBack;
        }
        if let Err(err) = inner.names.reserve(&record.name, &record.id) {
            tracing::error!(container_id = record.id, error = %err, "container name taken twice");
        }
        let entry = inner.containers.adopt(record);
        tracing::info!(container_id = entry.get().id, ?fate, "recovering container");
        match fate {
            ContainerFate::Keep => {}
            ContainerFate::Watch => container::watch_exit(inner, &entry),
            ContainerFate::Started => {
                // The start time is not known any closer than "while we were down".
                match entry.update(|r| {
                    r.phase = ContainerPhase::Running;
                    r.started_at = now_ns();
                }) {
                    Ok(()) => container::watch_exit(inner, &entry),
                    Err(err) => {
                        tracing::error!(container_id = entry.get().id, error = %err, "recording a started container failed")
                    }
                }
            }
            ContainerFate::Exited(exit) => container::record_exit(inner, &entry, Ok(exit)),
            ContainerFate::Lost => {
                container::record_exit(inner, &entry, Err(MonitorError::Gone { state_dir }))
            }
            ContainerFate::RollBack => {
                if let Err(err) = container::rollback(inner, &entry).await {
                    tracing::error!(container_id = entry.get().id, error = %err, "rolling back a container failed");
                }
            }
        }
    }
    remove_orphans(inner).await;
    Ok(())
}

/// Whether the OCI runtime ran a container whose record still says Created.
async fn started_while_down(inner: &Inner, record: &ContainerRecord) -> bool {
    let Ok(oci) = inner.handlers.get(&record.runtime_handler).cloned() else {
        return false;
    };
    let id = record.id.clone();
    match blocking(move || Ok(oci.state(&id)?)).await {
        Ok(state) => state.is_some_and(|s| {
            matches!(
                s.status,
                OciStatus::Running | OciStatus::Paused | OciStatus::Stopped
            )
        }),
        Err(err) => {
            tracing::warn!(container_id = record.id, error = %err, "cannot ask the OCI runtime for the container's state");
            false
        }
    }
}

fn pins_present(record: &SandboxRecord) -> bool {
    [
        &record.namespaces.net,
        &record.namespaces.ipc,
        &record.namespaces.uts,
    ]
    .into_iter()
    .flatten()
    .all(|path| path.exists())
}

/// The directories an id may own.
#[derive(Debug, Clone, Copy)]
enum Orphan {
    Monitor,
    Bundle,
    Sandbox,
}

/// Removes the bundle, monitor and sandbox dirs no record owns (left by a crash between
/// removing a record's files and the record), after undoing what may still be live in them.
async fn remove_orphans(inner: &Arc<Inner>) {
    let mut owned: HashSet<String> = inner
        .sandboxes
        .snapshot()
        .into_iter()
        .map(|r| r.id)
        .collect();
    owned.extend(inner.containers.snapshot().into_iter().map(|r| r.id));
    let layout = &inner.layout;
    for (parent, kind) in [
        (layout.monitors_dir(), Orphan::Monitor),
        (layout.containers_dir(), Orphan::Bundle),
        (layout.sandboxes_dir(), Orphan::Sandbox),
    ] {
        for id in orphans(&parent, &owned) {
            tracing::warn!(id, ?kind, "removing a directory no record owns");
            let outcome = match kind {
                Orphan::Monitor => orphan_monitor(inner, &id).await,
                Orphan::Bundle => orphan_bundle(inner, &id).await,
                Orphan::Sandbox => orphan_sandbox(inner, &id).await,
            };
            if let Err(err) = outcome {
                tracing::error!(id, ?kind, error = %err, "cannot remove an orphaned directory");
            }
        }
    }
}

fn orphans(parent: &Path, owned: &HashSet<String>) -> Vec<String> {
    std::fs::read_dir(parent)
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|name| !owned.contains(name))
                .collect()
        })
        .unwrap_or_default()
}

/// A container that outlived its record is deleted from every OCI runtime that may know it.
async fn orphan_monitor(inner: &Arc<Inner>, id: &str) -> Result<(), ServiceError> {
    for name in inner.handlers.names() {
        let oci = inner.handlers.get(&name)?.clone();
        container::kill_and_delete(&oci, id, &inner.layout.monitor_dir(id), false).await?;
    }
    let dir = inner.layout.monitor_dir(id);
    blocking(move || fsutil::remove_tree(&dir)).await
}

async fn orphan_bundle(inner: &Arc<Inner>, id: &str) -> Result<(), ServiceError> {
    let dir = inner.layout.container_dir(id);
    let images = inner.images.clone();
    let id = id.to_string();
    blocking(move || {
        fsutil::remove_tree(&dir)?;
        Ok(images.release(&id)?)
    })
    .await
}

/// A sandbox dir may still hold pinned namespaces with a network attached: DEL from the CNI
/// cache first, then the pins and the shm go with the tree.
async fn orphan_sandbox(inner: &Arc<Inner>, id: &str) -> Result<(), ServiceError> {
    let dir = inner.layout.sandbox_dir(id);
    let attachment = runtime_network::Attachment {
        sandbox_id: id.to_string(),
        netns: dir.join("ns").join("net"),
        ..Default::default()
    };
    inner.cni.teardown(&attachment).await?;
    blocking(move || fsutil::remove_tree(&dir)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitInfo {
        ExitInfo {
            code,
            finished_at_ns: 7,
            oom_killed: false,
        }
    }

    #[test]
    fn container_fates_follow_containerd_restart() {
        use ContainerPhase::*;
        assert_eq!(
            container_fate(Creating, true, None),
            ContainerFate::RollBack
        );
        assert_eq!(
            container_fate(Creating, false, Some(exit(0))),
            ContainerFate::RollBack
        );
        assert_eq!(container_fate(Created, true, None), ContainerFate::Keep);
        assert_eq!(container_fate(Created, false, None), ContainerFate::Lost);
        assert_eq!(container_fate(Running, true, None), ContainerFate::Watch);
        assert_eq!(
            container_fate(Running, false, Some(exit(3))),
            ContainerFate::Exited(exit(3))
        );
        // The exit file wins even while the monitor is still finishing up.
        assert_eq!(
            container_fate(Running, true, Some(exit(0))),
            ContainerFate::Exited(exit(0))
        );
        assert_eq!(container_fate(Running, false, None), ContainerFate::Lost);
        assert_eq!(container_fate(Exited, false, None), ContainerFate::Keep);
    }

    #[test]
    fn sandbox_fates() {
        use SandboxPhase::*;
        assert_eq!(sandbox_fate(Creating, true, true), SandboxFate::RollBack);
        assert_eq!(sandbox_fate(Ready, true, true), SandboxFate::Keep);
        assert_eq!(sandbox_fate(Ready, false, true), SandboxFate::NotReady);
        assert_eq!(sandbox_fate(Ready, true, false), SandboxFate::NotReady);
        assert_eq!(sandbox_fate(NotReady, false, false), SandboxFate::Keep);
    }
}
