//! RemoveContainer, and the rollback of a container whose creation failed or was cut off: the
//! same idempotent steps in the same order, so either can be repeated after an error or crash.

use super::create::rootfs_dir;
use super::{kill_and_delete, record_exit, shares_pid_namespace};
use crate::records::{ContainerPhase, ContainerRecord};
use crate::store::Entry;
use crate::{Inner, ServiceError, blocking, events, fsutil};
use k8s_cri::v1::ContainerEventType;
use runtime_images::unmount_rootfs;
use runtime_monitor::MonitorError;
use std::sync::Arc;
use tracing::Instrument;

/// RemoveContainer: a running container is killed first; a missing one is removed already.
pub(crate) async fn remove(inner: &Arc<Inner>, id: &str) -> Result<(), ServiceError> {
    let Some(entry) = inner.containers.find_opt(id)? else {
        tracing::debug!(
            container_id = id,
            "remove of a missing container: nothing to do"
        );
        return Ok(());
    };
    rollback(inner, &entry).await
}

/// Removes the container of `entry` with all it has (recovery rolls back with this too).
pub(crate) async fn rollback(
    inner: &Arc<Inner>,
    entry: &Arc<Entry<ContainerRecord>>,
) -> Result<(), ServiceError> {
    let span = tracing::info_span!("container", op = "remove", container_id = %entry.get().id);
    async {
        let _op = entry.op.lock().await;
        remove_locked(inner, entry).await
    }
    .instrument(span)
    .await
}

pub(super) async fn remove_locked(
    inner: &Arc<Inner>,
    entry: &Entry<ContainerRecord>,
) -> Result<(), ServiceError> {
    let record = entry.get();
    let state_dir = inner.layout.monitor_dir(&record.id);
    let oci = inner.handlers.get(&record.runtime_handler)?.clone();
    let all = shares_pid_namespace(inner, &record.sandbox_id);
    kill_and_delete(&oci, &record.id, &state_dir, all).await?;
    if record.phase == ContainerPhase::Running {
        // Recorded here, before the exit file goes with the state dir: an event follower must
        // see STOPPED before DELETED for every container that ran.
        let exit = runtime_monitor::read_exit(&state_dir).and_then(|exit| {
            exit.ok_or_else(|| MonitorError::Gone {
                state_dir: state_dir.clone(),
            })
        });
        record_exit(inner, entry, exit);
    }
    let bundle = inner.layout.container_dir(&record.id);
    let images = inner.images.clone();
    let (id, mounted) = (record.id.clone(), record.rootfs_mounted);
    blocking(move || {
        if mounted {
            unmount_rootfs(&rootfs_dir(&bundle))?;
            images.release(&id)?;
        }
        fsutil::remove_tree(&bundle)?;
        fsutil::remove_tree(&state_dir)
    })
    .await?;
    inner.containers.remove(&record.id)?;
    inner.names.release(&record.name, &record.id);
    if record.phase != ContainerPhase::Creating {
        events::container_event(
            inner,
            &entry.get(),
            ContainerEventType::ContainerDeletedEvent,
        );
    }
    tracing::info!("container removed");
    Ok(())
}
