//! The container's mounts: containerd's defaults, the sandbox's files and the CRI mounts.

use crate::{SandboxFiles, SpecError, SpecInput};
use k8s_cri::v1::{ContainerConfig, Mount as CriMount, MountPropagation};
use oci_spec::runtime::{Mount, MountBuilder};
use std::fs;
use std::path::{Path, PathBuf};

/// One mount before it becomes an OCI mount; kept simple so the merging below stays readable.
#[derive(Debug, Clone)]
struct Entry {
    destination: String,
    typ: &'static str,
    source: PathBuf,
    options: Vec<String>,
}

fn entry(destination: &str, typ: &'static str, source: &str, options: &[&str]) -> Entry {
    Entry {
        destination: destination.into(),
        typ,
        source: source.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

/// containerd's default mounts (oci.defaultMounts without /run, plus the read-only cgroup
/// mount the CRI plugin adds).
fn defaults(privileged: bool) -> Vec<Entry> {
    let ro_or_rw = if privileged { "rw" } else { "ro" };
    vec![
        entry("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        entry(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        entry(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        entry(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        entry(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        entry(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", ro_or_rw],
        ),
        entry(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro_or_rw],
        ),
    ]
}

/// The sandbox's /etc/hostname, /etc/hosts, /etc/resolv.conf (read-only with a read-only
/// rootfs) and /dev/shm, each unless the CRI config mounts that path itself.
fn sandbox_mounts(files: &SandboxFiles, readonly_rootfs: bool) -> Vec<CriMount> {
    let bind = |container_path: &str, host: &Option<PathBuf>, readonly: bool| {
        host.as_ref().map(|h| CriMount {
            container_path: container_path.into(),
            host_path: h.to_string_lossy().into_owned(),
            readonly,
            ..Default::default()
        })
    };
    [
        bind("/etc/hostname", &files.hostname, readonly_rootfs),
        bind("/etc/hosts", &files.hosts, readonly_rootfs),
        bind("/etc/resolv.conf", &files.resolv_conf, readonly_rootfs),
        bind("/dev/shm", &files.shm, false),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The mounts of the spec and the rootfs propagation the CRI mounts ask for.
pub(crate) fn build(
    container: &ContainerConfig,
    input: &SpecInput,
    readonly_rootfs: bool,
    privileged: bool,
) -> Result<(Vec<Mount>, Option<String>), SpecError> {
    let mut requested: Vec<CriMount> = container.mounts.clone();
    for extra in sandbox_mounts(&input.sandbox_files, readonly_rootfs) {
        if !requested
            .iter()
            .any(|m| clean(&m.container_path) == clean(&extra.container_path))
        {
            requested.push(extra);
        }
    }
    // Fewer path components first, so a parent mount never hides a mount beneath it (stable, as
    // containerd's sort.Stable).
    requested.sort_by_key(|m| clean(&m.container_path).matches('/').count());

    let targets: Vec<String> = requested.iter().map(|m| clean(&m.container_path)).collect();
    let dev_replaced = targets.iter().any(|t| t == "/dev");
    let mut entries: Vec<Entry> = defaults(privileged)
        .into_iter()
        .filter(|d| {
            let replaced = targets.contains(&d.destination);
            let under_replaced_dev = dev_replaced && d.destination.starts_with("/dev/");
            !(replaced || under_replaced_dev)
        })
        .collect();

    let mut propagation: Option<String> = None;
    for m in &requested {
        entries.push(bind_entry(m, &mut propagation, input.recursive_read_only)?);
    }
    let mounts = entries
        .into_iter()
        .map(|e| {
            MountBuilder::default()
                .destination(e.destination)
                .typ(e.typ)
                .source(e.source)
                .options(e.options)
                .build()
                .map_err(|e| SpecError::Build(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok((mounts, propagation))
}

fn bind_entry(
    m: &CriMount,
    propagation: &mut Option<String>,
    rro_supported: bool,
) -> Result<Entry, SpecError> {
    let host = Path::new(&m.host_path);
    let err = |source| SpecError::Mount {
        path: host.to_path_buf(),
        source,
    };
    // A missing host path is created as a directory (containerd does the same for hostPath
    // volumes the kubelet has not made), then symlinks are resolved on the host.
    if fs::symlink_metadata(host).is_err() {
        fs::create_dir_all(host).map_err(err)?;
    }
    let source = fs::canonicalize(host).map_err(err)?;
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(SpecError::Unsupported(format!(
            "idmapped mount of {}",
            m.host_path
        )));
    }
    let mode =
        MountPropagation::try_from(m.propagation).unwrap_or(MountPropagation::PropagationPrivate);
    if m.recursive_read_only {
        recursive_read_only_allowed(m, mode, rro_supported)?;
    }
    let mut options = vec!["rbind".to_string()];
    match mode {
        MountPropagation::PropagationPrivate => options.push("rprivate".into()),
        MountPropagation::PropagationBidirectional => {
            options.push("rshared".into());
            *propagation = Some("rshared".into());
        }
        MountPropagation::PropagationHostToContainer => {
            options.push("rslave".into());
            if propagation.is_none() {
                *propagation = Some("rslave".into());
            }
        }
    }
    // Not every mount turns read-only with a read-only rootfs: containerd's choice, kept.
    options.push(if m.readonly { "ro" } else { "rw" }.into());
    if m.recursive_read_only {
        options.push("rro".into());
    }
    // selinux_relabel is accepted and ignored: no SELinux on the nodes we run on.
    Ok(Entry {
        destination: m.container_path.clone(),
        typ: "bind",
        source,
        options,
    })
}

/// A recursive read-only mount must be read-only, private (a submount propagated in later
/// would be writable) and applied by the OCI runtime, as containerd checks.
fn recursive_read_only_allowed(
    m: &CriMount,
    mode: MountPropagation,
    supported: bool,
) -> Result<(), SpecError> {
    let invalid = |reason: String| SpecError::InvalidMount {
        path: m.container_path.clone(),
        reason,
    };
    if !m.readonly {
        return Err(invalid(
            "recursive read-only needs readonly to be true".into(),
        ));
    }
    if mode != MountPropagation::PropagationPrivate {
        return Err(invalid(format!(
            "recursive read-only needs private propagation, not {}",
            mode.as_str_name()
        )));
    }
    if !supported {
        return Err(SpecError::Unsupported(format!(
            "recursive read-only mount of {}: the OCI runtime does not support rro",
            m.container_path
        )));
    }
    Ok(())
}

/// filepath.Clean for the absolute container paths CRI gives.
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}
