//! Pod namespaces without a pause process: the network, IPC and UTS namespaces are created by a
//! throwaway thread and kept alive by bind mounts of its /proc/thread-self/ns files (what
//! CRI-O's pinns and containerd's netns package do), so no daemon thread ever changes namespace.

mod mountinfo;
mod sysctl;

use crate::NetworkError;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use sysctl::{Sysctl, SysctlKind};

/// Which namespaces a sandbox gets, and what is set inside them before they are pinned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinRequest {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    /// Set in the new UTS namespace; only allowed with `uts`.
    pub hostname: Option<String>,
    /// Namespaced sysctls only: `net.*` need `net`, the SysV IPC ones and `fs.mqueue.*` need `ipc`.
    pub sysctls: BTreeMap<String, String>,
}

/// The bind-mounted namespace files; None = that kind was not asked for (the host's is used).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

/// Creates the asked namespaces in a throwaway thread, sets the hostname and sysctls inside, and
/// bind-mounts them onto dir/net, dir/ipc and dir/uts. dir becomes a private mount of itself
/// first, so the namespace mounts never propagate into other mount namespaces (where a copy
/// would keep a namespace alive after [`unpin`]). On error nothing is left mounted.
#[tracing::instrument(skip_all, fields(dir = %dir.display()))]
pub fn pin(dir: &Path, request: &PinRequest) -> Result<PinnedNamespaces, NetworkError> {
    let sysctls = check(request)?;
    let kinds: Vec<(&'static str, CloneFlags)> = [
        (request.net, "net", CloneFlags::CLONE_NEWNET),
        (request.ipc, "ipc", CloneFlags::CLONE_NEWIPC),
        (request.uts, "uts", CloneFlags::CLONE_NEWUTS),
    ]
    .into_iter()
    .filter(|(asked, _, _)| *asked)
    .map(|(_, name, flag)| (name, flag))
    .collect();
    if kinds.is_empty() {
        return Ok(PinnedNamespaces::default());
    }
    let io_err = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| NetworkError::Namespace { op, path, source }
    };
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let dir = dir.canonicalize().map_err(io_err("resolve", dir))?;
    let table = mountinfo::read().map_err(io_err("read the mount table for", &dir))?;

    let targets: Vec<(&'static str, PathBuf)> = kinds
        .iter()
        .map(|(name, _)| (*name, dir.join(name)))
        .collect();
    let pinned = PinnedNamespaces {
        net: request.net.then(|| dir.join("net")),
        ipc: request.ipc.then(|| dir.join("ipc")),
        uts: request.uts.then(|| dir.join("uts")),
    };
    for (_, target) in &targets {
        if mountinfo::mount_at(&table, target).is_some() {
            return Err(NetworkError::AlreadyPinned {
                path: target.clone(),
            });
        }
    }
    let result = (|| {
        make_private_mount(&dir, &table)?;
        for (_, target) in &targets {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(target)
                .map_err(io_err("create", target))?;
        }
        let flags = kinds
            .iter()
            .fold(CloneFlags::empty(), |all, (_, flag)| all | *flag);
        let hostname = request.hostname.clone();
        let thread_targets = targets.clone();
        std::thread::Builder::new()
            .name("pin-namespaces".into())
            .spawn(move || in_new_namespaces(flags, hostname, sysctls, thread_targets))
            .map_err(io_err("start the namespace thread for", &dir))?
            .join()
            .map_err(|_| NetworkError::ThreadPanicked)?
    })();
    match result {
        Ok(()) => {
            tracing::debug!(?pinned, "namespaces pinned");
            Ok(pinned)
        }
        Err(err) => {
            if let Err(cleanup) = unpin(&pinned) {
                tracing::warn!(error = %cleanup, "cleaning up after a failed pin");
            }
            Err(err)
        }
    }
}

/// Validates the request before anything is created.
fn check(request: &PinRequest) -> Result<Vec<(Sysctl, String)>, NetworkError> {
    if request.hostname.is_some() && !request.uts {
        return Err(NetworkError::InvalidRequest(
            "a hostname needs a new UTS namespace (uts = true)".into(),
        ));
    }
    request
        .sysctls
        .iter()
        .map(|(name, value)| {
            let sysctl = sysctl::resolve(name)?;
            let (present, kind) = match sysctl.kind {
                SysctlKind::Net => (request.net, "network"),
                SysctlKind::Ipc => (request.ipc, "IPC"),
            };
            if !present {
                return Err(NetworkError::SysctlRefused {
                    name: name.clone(),
                    reason: format!("the pod has no {kind} namespace of its own (host {kind})"),
                });
            }
            Ok((sysctl, value.clone()))
        })
        .collect()
}

/// Runs in the throwaway thread: its namespaces become the pod's, and die with it unless pinned.
fn in_new_namespaces(
    flags: CloneFlags,
    hostname: Option<String>,
    sysctls: Vec<(Sysctl, String)>,
    targets: Vec<(&'static str, PathBuf)>,
) -> Result<(), NetworkError> {
    let ns_err = |op, path: &Path| {
        let path = path.to_path_buf();
        move |errno: Errno| NetworkError::Namespace {
            op,
            path,
            source: errno.into(),
        }
    };
    unshare(flags).map_err(ns_err("unshare namespaces for", Path::new("the pod")))?;
    if let Some(hostname) = hostname {
        nix::unistd::sethostname(&hostname)
            .map_err(ns_err("set the hostname", Path::new(&hostname)))?;
    }
    // /proc/sys resolves net.* and the IPC sysctls in the namespaces of the calling thread.
    for (sysctl, value) in sysctls {
        fs::write(Path::new("/proc/sys").join(&sysctl.path), value.as_bytes()).map_err(
            |source| NetworkError::SysctlWrite {
                name: sysctl.name.clone(),
                value: value.clone(),
                source,
            },
        )?;
    }
    for (kind, target) in targets {
        let source = format!("/proc/thread-self/ns/{kind}");
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(ns_err("bind-mount the namespace onto", &target))?;
    }
    Ok(())
}

/// Makes `dir` a mount point (a bind of itself, as `ip netns` does for /run/netns) with private
/// propagation, so that mounts made under it are neither copied to peers nor to slaves.
fn make_private_mount(dir: &Path, table: &[mountinfo::MountEntry]) -> Result<(), NetworkError> {
    let err = |op| {
        move |errno: Errno| NetworkError::Namespace {
            op,
            path: dir.to_path_buf(),
            source: errno.into(),
        }
    };
    if mountinfo::mount_at(table, dir).is_none() {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(err("bind-mount onto itself"))?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("make a private mount of"))
}

/// Unmounts and removes the namespace files, then the private mount of their directory once
/// nothing else is mounted under it. Missing files and mounts are fine: idempotent.
#[tracing::instrument(skip_all)]
pub fn unpin(pinned: &PinnedNamespaces) -> Result<(), NetworkError> {
    let mut dirs = BTreeSet::new();
    for path in [&pinned.net, &pinned.ipc, &pinned.uts]
        .into_iter()
        .flatten()
    {
        unmount(path)?;
        match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(NetworkError::Namespace {
                    op: "remove",
                    path: path.clone(),
                    source: err,
                });
            }
            _ => {}
        }
        if let Some(dir) = path.parent().and_then(|d| d.canonicalize().ok()) {
            dirs.insert(dir);
        }
    }
    if dirs.is_empty() {
        return Ok(());
    }
    let table = mountinfo::read().map_err(|source| NetworkError::Namespace {
        op: "read the mount table for",
        path: PathBuf::from("/proc/self/mountinfo"),
        source,
    })?;
    for dir in dirs {
        let busy = table
            .iter()
            .any(|m| m.mount_point != dir && m.mount_point.starts_with(&dir));
        if mountinfo::is_self_bind(&table, &dir) && !busy {
            unmount(&dir)?;
        }
    }
    tracing::debug!(?pinned, "namespaces unpinned");
    Ok(())
}

/// umount2(MNT_DETACH); "not mounted" (EINVAL) and "missing" (ENOENT) count as done.
fn unmount(path: &Path) -> Result<(), NetworkError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(NetworkError::Namespace {
            op: "unmount",
            path: path.to_path_buf(),
            source: errno.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PinRequest {
        PinRequest {
            net: true,
            ..Default::default()
        }
    }

    #[test]
    fn refuses_a_hostname_without_uts() {
        let mut req = request();
        req.hostname = Some("pod".into());
        let err = check(&req).unwrap_err();
        assert!(err.to_string().contains("UTS"), "{err}");
    }

    #[test]
    fn refuses_sysctls_of_a_namespace_the_pod_does_not_own() {
        let mut req = request();
        req.sysctls.insert("kernel.shmmax".into(), "1".into());
        let err = check(&req).unwrap_err();
        assert!(err.to_string().contains("kernel.shmmax"), "{err}");
        assert!(err.to_string().contains("IPC"), "{err}");
        req.ipc = true;
        req.sysctls.insert("vm.swappiness".into(), "1".into());
        let err = check(&req).unwrap_err();
        assert!(err.to_string().contains("vm.swappiness"), "{err}");
        req.sysctls.remove("vm.swappiness");
        assert_eq!(check(&req).unwrap().len(), 1);
    }
}
