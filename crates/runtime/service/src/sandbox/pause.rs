//! The init of a pod that shares one PID namespace (shareProcessNamespace): catatonit in pause
//! mode (`catatonit -P`), run through a monitor like any container, from a read-only root that
//! holds nothing but catatonit. The containers join its PID namespace; it reaps their orphans.

use super::cgroup_parent;
use crate::records::{PauseProcess, SandboxRecord};
use crate::{Inner, ServiceError, blocking, container};
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, LinuxContainerConfig, LinuxContainerSecurityContext,
    NamespaceMode, NamespaceOption,
};
use runtime_oci::{NamespacePaths, SpecInput};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

/// Where catatonit is inside the init's root.
const INIT: &str = "/usr/bin/catatonit";

pub(super) async fn start(
    inner: &Arc<Inner>,
    record: &SandboxRecord,
) -> Result<PauseProcess, ServiceError> {
    let oci = inner.handlers.get(&record.runtime_handler)?.clone();
    let id = record.id.clone();
    let rootfs = inner.layout.pause_rootfs();
    let bundle = inner.layout.container_dir(&id);
    let parent = cgroup_parent(&record.config).to_string();
    let cgroups_path = container::cgroups_path(inner.options.cgroup_driver, &parent, &id);
    let monitor =
        container::monitor_config(inner, &oci, &id, None, &ContainerConfig::default(), &parent);
    let monitor_binary = inner.options.monitor_binary.clone();
    let sandbox = record.config.clone();
    let namespaces = NamespacePaths {
        net: record.namespaces.net.clone(),
        ipc: record.namespaces.ipc.clone(),
        uts: record.namespaces.uts.clone(),
        pid: None,
    };
    let files = record.files.to_oci();
    let pid = blocking(move || {
        prepare_rootfs(&rootfs)?;
        let config = init_config();
        let image = oci_spec::image::ImageConfiguration::default();
        let spec = runtime_oci::build_spec(&SpecInput {
            container_id: &id,
            sandbox_id: &id,
            container: &config,
            sandbox: &sandbox,
            image: &image,
            rootfs: &rootfs,
            namespaces,
            cgroups_path,
            sandbox_files: files,
            pids_limit: None,
            cdi_spec_dirs: &[],
            recursive_read_only: false,
        })?;
        runtime_oci::write_bundle(&bundle, &spec)?;
        let created = container::spawn_monitor(&oci, &monitor_binary, &monitor)?;
        oci.start(&id)?;
        Ok(created.container_pid)
    })
    .await?;
    tracing::info!(pid, "pod init started (shared PID namespace)");
    Ok(PauseProcess {
        id: record.id.clone(),
        pid,
    })
}

/// Kills the init (and with it whatever is left in the pod's PID namespace) and deletes it from
/// the OCI runtime.
pub(super) async fn stop(
    inner: &Arc<Inner>,
    record: &SandboxRecord,
    init: &PauseProcess,
) -> Result<(), ServiceError> {
    let oci = inner.handlers.get(&record.runtime_handler)?.clone();
    container::kill_and_delete(&oci, &init.id, &inner.layout.monitor_dir(&init.id), false).await
}

/// catatonit alone in its own PID namespace (the one the containers join), read-only root.
fn init_config() -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "POD".into(),
            attempt: 0,
        }),
        command: vec![INIT.into(), "-P".into()],
        linux: Some(LinuxContainerConfig {
            resources: None,
            security_context: Some(LinuxContainerSecurityContext {
                readonly_rootfs: true,
                namespace_options: Some(NamespaceOption {
                    pid: NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// The init's root: catatonit and the mount points the runtime needs, made once and shared by
/// every pod (read-only in each).
fn prepare_rootfs(rootfs: &Path) -> Result<(), ServiceError> {
    let target = rootfs.join(INIT.trim_start_matches('/'));
    if target.is_file() {
        return Ok(());
    }
    let source = runtime_oci::find_binary("catatonit").ok_or_else(|| {
        ServiceError::FailedPrecondition(
            "a pod sharing its PID namespace needs catatonit (Debian package catatonit)".into(),
        )
    })?;
    for dir in ["usr/bin", "proc", "sys", "dev", "etc"] {
        let path = rootfs.join(dir);
        std::fs::create_dir_all(&path).map_err(ServiceError::io("create", &path))?;
    }
    for file in ["etc/hostname", "etc/hosts", "etc/resolv.conf"] {
        let path = rootfs.join(file);
        std::fs::write(&path, b"").map_err(ServiceError::io("create", &path))?;
    }
    // Copied under a temporary name and renamed, so a concurrent pod never runs half a file.
    let temp = target.with_extension(format!("tmp-{}", &crate::ids::new_id()[..12]));
    std::fs::copy(&source, &temp).map_err(ServiceError::io("copy catatonit to", &temp))?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
        .map_err(ServiceError::io("chmod", &temp))?;
    std::fs::rename(&temp, &target).map_err(ServiceError::io("rename", &target))
}
