//! StopPodSandbox and RemovePodSandbox, and the rollback of a sandbox whose creation failed or
//! was cut off. Every step is idempotent, so any of them can be repeated after an error or a
//! crash; a sandbox that does not exist is already stopped and removed.

use super::run::attachment;
use super::{files, pause};
use crate::records::{SandboxPhase, SandboxRecord};
use crate::store::Entry;
use crate::{Inner, ServiceError, blocking, container, events, fsutil};
use k8s_cri::v1::ContainerEventType;
use runtime_network::PinnedNamespaces;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::Instrument;

/// Where the namespaces of the sandbox with state dir `dir` are pinned.
pub(super) fn namespaces_dir(dir: &Path) -> PathBuf {
    dir.join("ns")
}

fn span(record: &SandboxRecord, op: &'static str) -> tracing::Span {
    let meta = record.config.metadata.clone().unwrap_or_default();
    tracing::info_span!("pod_sandbox", op, pod_uid = %meta.uid, namespace = %meta.namespace,
        pod = %meta.name, sandbox_id = %record.id)
}

/// StopPodSandbox: its containers killed, its init stopped, network torn down, namespaces
/// unpinned, shm unmounted; phase NotReady.
pub(crate) async fn stop(inner: &Arc<Inner>, id: &str) -> Result<(), ServiceError> {
    let Some(entry) = inner.sandboxes.find_opt(id)? else {
        tracing::debug!(
            sandbox_id = id,
            "stop of a missing pod sandbox: nothing to do"
        );
        return Ok(());
    };
    let span = span(&entry.get(), "stop");
    async {
        let _op = entry.op.lock().await;
        stop_locked(inner, &entry, Network::MustDetach).await
    }
    .instrument(span)
    .await
}

/// RemovePodSandbox: stopped first, then its containers, dirs, record and name are removed.
pub(crate) async fn remove(inner: &Arc<Inner>, id: &str) -> Result<(), ServiceError> {
    let Some(entry) = inner.sandboxes.find_opt(id)? else {
        tracing::debug!(
            sandbox_id = id,
            "remove of a missing pod sandbox: nothing to do"
        );
        return Ok(());
    };
    let span = span(&entry.get(), "remove");
    async {
        let _op = entry.op.lock().await;
        remove_locked(inner, &entry, Network::MustDetach).await
    }
    .instrument(span)
    .await
}

/// Undoes a sandbox left in phase Creating (recovery).
pub(crate) async fn rollback(
    inner: &Arc<Inner>,
    entry: &Arc<Entry<SandboxRecord>>,
) -> Result<(), ServiceError> {
    let span = span(&entry.get(), "rollback");
    async {
        let _op = entry.op.lock().await;
        remove_locked(inner, entry, Network::MustDetach).await
    }
    .instrument(span)
    .await
}

/// Whether a failing CNI DEL stops the teardown (and the caller retries, as the kubelet does
/// with StopPodSandbox), or is only logged: the undo of a RunPodSandbox that failed must not be
/// kept from removing the pins by a network that never worked (containerd does the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Network {
    MustDetach,
    BestEffort,
}

async fn stop_locked(
    inner: &Arc<Inner>,
    entry: &Entry<SandboxRecord>,
    network: Network,
) -> Result<(), ServiceError> {
    let record = entry.get();
    // containerd stops a pod's containers with no grace period: the kubelet has already given
    // them theirs. All at once, so a pod's stop takes one kill's time, not one per container.
    let ids: Vec<String> = container::of_sandbox(inner, &record.id)
        .iter()
        .map(|c| c.get().id)
        .collect();
    futures::future::try_join_all(ids.iter().map(|id| container::stop(inner, id, 0))).await?;
    if let Some(init) = &record.pause {
        pause::stop(inner, &record, init).await?;
    }
    release(inner, entry, network).await?;
    if record.phase != SandboxPhase::NotReady {
        entry.update(|r| r.phase = SandboxPhase::NotReady)?;
        tracing::info!("pod sandbox stopped");
        // A sandbox that never became ready had no CREATED event either.
        if record.phase == SandboxPhase::Ready {
            events::sandbox_event(
                inner,
                &entry.get(),
                ContainerEventType::ContainerStoppedEvent,
            );
        }
    }
    Ok(())
}

pub(super) async fn remove_locked(
    inner: &Arc<Inner>,
    entry: &Entry<SandboxRecord>,
    network: Network,
) -> Result<(), ServiceError> {
    // Past Creating, the sandbox had its CREATED event; a rolled-back one goes silently.
    let announced = entry.get().phase != SandboxPhase::Creating;
    stop_locked(inner, entry, network).await?;
    let record = entry.get();
    for c in container::of_sandbox(inner, &record.id) {
        container::remove(inner, &c.get().id).await?;
    }
    let dirs = [
        inner.layout.sandbox_dir(&record.id),
        inner.layout.container_dir(&record.id),
        inner.layout.monitor_dir(&record.id),
    ];
    blocking(move || dirs.iter().try_for_each(|d| fsutil::remove_tree(d))).await?;
    inner.sandboxes.remove(&record.id)?;
    inner.names.release(&record.name, &record.id);
    tracing::info!("pod sandbox removed");
    if announced {
        events::sandbox_event(inner, &record, ContainerEventType::ContainerDeletedEvent);
    }
    Ok(())
}

/// CNI DEL (when ADD may have run), namespaces unpinned and shm unmounted; each step is a
/// no-op when already done.
async fn release(
    inner: &Arc<Inner>,
    entry: &Entry<SandboxRecord>,
    network: Network,
) -> Result<(), ServiceError> {
    let record = entry.get();
    let dir = inner.layout.sandbox_dir(&record.id);
    let ns_dir = namespaces_dir(&dir);
    if record.network_attached {
        let netns = record.namespaces.net.clone().unwrap_or(ns_dir.join("net"));
        match inner.cni.teardown(&attachment(&record, &netns)).await {
            Err(err) if network == Network::BestEffort => {
                tracing::warn!(error = %err, "CNI DEL failed; removing the namespaces anyway");
            }
            other => other?,
        }
        entry.update(|r| r.network_attached = false)?;
    }
    // Every kind is unpinned whatever the record says: a crash right after pinning leaves
    // pins the record does not name yet.
    let pinned = PinnedNamespaces {
        net: Some(ns_dir.join("net")),
        ipc: Some(ns_dir.join("ipc")),
        uts: Some(ns_dir.join("uts")),
    };
    blocking(move || {
        runtime_network::unpin(&pinned)?;
        fsutil::unmount(&files::shm_dir(&dir))
    })
    .await
}
