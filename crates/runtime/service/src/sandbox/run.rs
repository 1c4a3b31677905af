//! RunPodSandbox: name, record, namespaces, network, files, and (for a shared PID namespace) the
//! pod's init. The record is written first, in phase Creating, and every later step is undone by
//! [`super::rollback`] when one fails, or after a crash by recovery.

use super::{Modes, files, pause, stop};
use crate::ids::new_id;
use crate::names::sandbox_name;
use crate::records::{SandboxFiles, SandboxPhase, SandboxRecord};
use crate::{Inner, ServiceError, blocking, events, now_ns};
use k8s_cri::v1::{ContainerEventType, PodSandboxConfig};
use runtime_network::{Attachment, PinRequest, PinnedNamespaces};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tracing::Instrument;

pub(crate) async fn run(
    inner: &Arc<Inner>,
    config: PodSandboxConfig,
    runtime_handler: String,
) -> Result<String, ServiceError> {
    let meta = config.metadata.clone().ok_or_else(|| {
        ServiceError::InvalidArgument("the sandbox config has no metadata".into())
    })?;
    let id = new_id();
    let span = tracing::info_span!("run_pod_sandbox", pod_uid = %meta.uid,
        namespace = %meta.namespace, pod = %meta.name, attempt = meta.attempt, sandbox_id = %id);
    async move {
        // An unknown handler is refused before anything exists.
        inner.handlers.get(&runtime_handler)?;
        let name = sandbox_name(&meta);
        inner.names.reserve(&name, &id)?;
        let record = SandboxRecord {
            id: id.clone(),
            name: name.clone(),
            config,
            runtime_handler,
            phase: SandboxPhase::Creating,
            created_at: now_ns(),
            namespaces: PinnedNamespaces::default(),
            network: None,
            network_attached: false,
            files: SandboxFiles::default(),
            pause: None,
        };
        let entry = match inner.sandboxes.insert(record) {
            Ok(entry) => entry,
            Err(err) => {
                inner.names.release(&name, &id);
                return Err(err);
            }
        };
        let _op = entry.op.lock().await;
        match set_up(inner, &entry).await {
            Ok(()) => {
                tracing::info!("pod sandbox ready");
                let ready = entry.get();
                events::sandbox_event(inner, &ready, ContainerEventType::ContainerCreatedEvent);
                events::sandbox_event(inner, &ready, ContainerEventType::ContainerStartedEvent);
                Ok(id.clone())
            }
            Err(err) => {
                tracing::warn!(error = %err, "pod sandbox failed; rolling back");
                if let Err(cleanup) =
                    stop::remove_locked(inner, &entry, stop::Network::BestEffort).await
                {
                    tracing::error!(error = %cleanup, "rolling back the pod sandbox failed");
                }
                Err(err)
            }
        }
    }
    .instrument(span)
    .await
}

async fn set_up(
    inner: &Arc<Inner>,
    entry: &crate::store::Entry<SandboxRecord>,
) -> Result<(), ServiceError> {
    let record = entry.get();
    let modes = Modes::of(&record.config);
    let dir = inner.layout.sandbox_dir(&record.id);
    std::fs::create_dir_all(&dir).map_err(ServiceError::io("create", &dir))?;

    let linux = record.config.linux.clone().unwrap_or_default();
    let request = PinRequest {
        net: !modes.host_network,
        ipc: !modes.host_ipc,
        // A pod on the host network has the host's hostname, so its UTS namespace too.
        uts: !modes.host_network,
        hostname: Some(record.config.hostname.clone())
            .filter(|h| !h.is_empty() && !modes.host_network),
        sysctls: linux.sysctls.into_iter().collect(),
    };
    let ns_dir = stop::namespaces_dir(&dir);
    let namespaces = blocking(move || Ok(runtime_network::pin(&ns_dir, &request)?)).await?;
    // Each record write is durable (fsync), so steps share one where a crash in between leaves
    // the same cleanup to do. network_attached goes with the namespaces, before ADD: a crash
    // during ADD still owes a DEL.
    let attach = namespaces.net.clone();
    entry.update(|r| {
        r.network_attached = namespaces.net.is_some();
        r.namespaces = namespaces;
    })?;

    let network = match &attach {
        Some(netns) => {
            let network = inner.cni.setup(&attachment(&record, netns)).await?;
            tracing::info!(ips = ?network.ips, "pod network attached");
            Some(network)
        }
        None => None,
    };

    let config = record.config.clone();
    let files_dir = dir.clone();
    let sandbox_files = blocking(move || files::write(&files_dir, &config, modes)).await?;

    entry.update(|r| {
        r.network = network;
        r.files = sandbox_files;
        if !modes.shared_pid {
            r.phase = SandboxPhase::Ready;
        }
    })?;
    if modes.shared_pid {
        let pause = pause::start(inner, &entry.get()).await?;
        entry.update(|r| {
            r.pause = Some(pause);
            r.phase = SandboxPhase::Ready;
        })?;
    }
    Ok(())
}

/// What CNI is told about the pod.
pub(super) fn attachment(record: &SandboxRecord, netns: &Path) -> Attachment {
    let meta = record.config.metadata.clone().unwrap_or_default();
    Attachment {
        sandbox_id: record.id.clone(),
        netns: netns.to_path_buf(),
        pod_name: meta.name,
        pod_namespace: meta.namespace,
        pod_uid: meta.uid,
        port_mappings: record.config.port_mappings.clone(),
        annotations: record
            .config
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}
