//! CreateContainer: name, image, record (phase Creating, written first), image lease, overlay
//! rootfs, OCI spec and bundle, and the monitor that runs the OCI runtime's `create`. A failure
//! rolls back every step; after a crash recovery does.

use super::{cgroups_path, monitor_config, remove, spawn_monitor};
use crate::names::container_name;
use crate::records::{ContainerPhase, ContainerRecord, SandboxPhase, SandboxRecord};
use crate::store::Entry;
use crate::{Inner, ServiceError, blocking, events, now_ns, sandbox};
use k8s_cri::v1::{ContainerConfig, ContainerEventType, NamespaceMode};
use runtime_images::{Image, mount_rootfs};
use runtime_oci::{NamespacePaths, SpecInput};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::Instrument;

pub(crate) async fn create(
    inner: &Arc<Inner>,
    sandbox_id: &str,
    config: ContainerConfig,
) -> Result<String, ServiceError> {
    let meta = config.metadata.clone().ok_or_else(|| {
        ServiceError::InvalidArgument("the container config has no metadata".into())
    })?;
    let image_ref = config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            ServiceError::InvalidArgument("the container config names no image".into())
        })?;
    let sandbox_entry = inner.sandboxes.find(sandbox_id)?;
    let id = crate::ids::new_id();
    let pod = sandbox_entry.get().config.metadata.unwrap_or_default();
    let span = tracing::info_span!("create_container", container_id = %id, container = %meta.name,
        pod_uid = %pod.uid, namespace = %pod.namespace, pod = %pod.name);
    async move {
        // Held throughout, so StopPodSandbox cannot pass between the readiness check and the
        // new container (which it would then miss).
        let _sandbox_op = sandbox_entry.op.lock().await;
        let sandbox = sandbox_entry.get();
        if sandbox.phase != SandboxPhase::Ready {
            return Err(ServiceError::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                sandbox.id
            )));
        }
        let name = container_name(&meta, &pod);
        inner.names.reserve(&name, &id)?;
        let (entry, image) = match new_record(inner, &id, &name, &sandbox, config, &image_ref) {
            Ok(created) => created,
            Err(err) => {
                inner.names.release(&name, &id);
                return Err(err);
            }
        };
        let _op = entry.op.lock().await;
        match build(inner, &entry, &sandbox, image).await {
            Ok(()) => {
                tracing::info!(pid = entry.get().pid, "container created");
                events::container_event(
                    inner,
                    &entry.get(),
                    ContainerEventType::ContainerCreatedEvent,
                );
                Ok(id.clone())
            }
            Err(err) => {
                tracing::warn!(error = %err, "creating the container failed; rolling back");
                if let Err(cleanup) = remove::remove_locked(inner, &entry).await {
                    tracing::error!(error = %cleanup, "rolling back the container failed");
                }
                Err(err)
            }
        }
    }
    .instrument(span)
    .await
}

fn new_record(
    inner: &Inner,
    id: &str,
    name: &str,
    sandbox: &SandboxRecord,
    config: ContainerConfig,
    image_ref: &str,
) -> Result<(Arc<Entry<ContainerRecord>>, Image), ServiceError> {
    let image = inner
        .images
        .get(image_ref)
        .ok_or_else(|| ServiceError::NotFound {
            kind: "image",
            id: image_ref.to_string(),
        })?;
    let log_path = match (
        sandbox.config.log_directory.as_str(),
        config.log_path.as_str(),
    ) {
        ("", _) | (_, "") => String::new(),
        (dir, file) => Path::new(dir).join(file).to_string_lossy().into_owned(),
    };
    let parent = sandbox::cgroup_parent(&sandbox.config);
    let entry = inner.containers.insert(ContainerRecord {
        id: id.to_string(),
        sandbox_id: sandbox.id.clone(),
        name: name.to_string(),
        config,
        image_id: image.id.clone(),
        image_ref: digest_ref(&image),
        runtime_handler: sandbox.runtime_handler.clone(),
        phase: ContainerPhase::Creating,
        created_at: now_ns(),
        started_at: 0,
        finished_at: 0,
        exit_code: 0,
        reason: String::new(),
        message: String::new(),
        pid: 0,
        log_path,
        cgroups_path: cgroups_path(inner.options.cgroup_driver, parent, id),
        stop_signal: image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.stop_signal().clone())
            .filter(|s| !s.is_empty()),
        // Set from the first write: removal and recovery then undo the lease and mount that
        // build() makes, and a mount that never happened unmounts as a no-op.
        rootfs_mounted: true,
    })?;
    Ok((entry, image))
}

/// The image as ContainerStatus.image_ref names it: a repo digest when the image has one.
fn digest_ref(image: &Image) -> String {
    image
        .repo_digests
        .first()
        .cloned()
        .unwrap_or_else(|| image.id.clone())
}

/// The container's files: overlay rootfs below the bundle, the upper and work dirs beside it.
pub(super) fn rootfs_dir(bundle: &Path) -> PathBuf {
    bundle.join("rootfs")
}

async fn build(
    inner: &Arc<Inner>,
    entry: &Entry<ContainerRecord>,
    sandbox: &SandboxRecord,
    image: Image,
) -> Result<(), ServiceError> {
    let record = entry.get();
    let oci = inner.handlers.get(&record.runtime_handler)?.clone();
    let rro = inner.handlers.recursive_read_only(&record.runtime_handler);
    let images = inner.images.clone();
    let bundle = inner.layout.container_dir(&record.id);
    let parent = sandbox::cgroup_parent(&sandbox.config).to_string();
    let log_path = Some(PathBuf::from(&record.log_path)).filter(|p| !p.as_os_str().is_empty());
    let monitor = monitor_config(
        inner,
        &oci,
        &record.id,
        log_path.clone(),
        &record.config,
        &parent,
    );
    let monitor_binary = inner.options.monitor_binary.clone();
    let target_pid_namespace = target_pid_namespace(inner, &record.config)?;
    let sandbox = sandbox.clone();
    let created = blocking(move || {
        let lowers = images.lease(&record.id, &image.id)?;
        let rootfs = rootfs_dir(&bundle);
        let (upper, work) = (bundle.join("upper"), bundle.join("work"));
        for dir in [&rootfs, &upper, &work] {
            std::fs::create_dir_all(dir).map_err(ServiceError::io("create", dir))?;
        }
        mount_rootfs(&lowers, &upper, &work, &rootfs)?;
        let pid_namespace = target_pid_namespace.or_else(|| {
            sandbox
                .pause
                .as_ref()
                .map(|init| PathBuf::from(format!("/proc/{}/ns/pid", init.pid)))
        });
        let spec = runtime_oci::build_spec(&SpecInput {
            container_id: &record.id,
            sandbox_id: &sandbox.id,
            container: &record.config,
            sandbox: &sandbox.config,
            image: &image.config,
            rootfs: &rootfs,
            namespaces: NamespacePaths {
                net: sandbox.namespaces.net.clone(),
                ipc: sandbox.namespaces.ipc.clone(),
                uts: sandbox.namespaces.uts.clone(),
                pid: pid_namespace,
            },
            cgroups_path: record.cgroups_path.clone(),
            sandbox_files: sandbox.files.to_oci(),
            pids_limit: None,
            cdi_spec_dirs: &runtime_oci::cdi::DEFAULT_SPEC_DIRS.map(PathBuf::from),
            recursive_read_only: rro,
        })?;
        runtime_oci::write_bundle(&bundle, &spec)?;
        if let Some(dir) = log_path.as_deref().and_then(Path::parent) {
            std::fs::create_dir_all(dir).map_err(ServiceError::io("create", dir))?;
        }
        spawn_monitor(&oci, &monitor_binary, &monitor)
    })
    .await?;
    entry.update(|r| {
        r.pid = created.container_pid;
        r.phase = ContainerPhase::Created;
    })?;
    Ok(())
}

/// The process namespace of the container a TARGET pid mode names (an ephemeral container
/// debugging it), which must be running.
fn target_pid_namespace(
    inner: &Inner,
    config: &ContainerConfig,
) -> Result<Option<PathBuf>, ServiceError> {
    let options = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|sc| sc.namespace_options.as_ref());
    let Some(target) = options.filter(|o| o.pid == NamespaceMode::Target as i32) else {
        return Ok(None);
    };
    let pid = inner.containers.find(&target.target_id)?.get().pid;
    if pid <= 0 {
        return Err(ServiceError::FailedPrecondition(format!(
            "target container {} is not running",
            target.target_id
        )));
    }
    Ok(Some(PathBuf::from(format!("/proc/{pid}/ns/pid"))))
}
