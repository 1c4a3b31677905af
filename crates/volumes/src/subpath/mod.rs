//! subPath and subPathExpr: the path inside the volume is resolved safely, then pinned by a bind
//! mount of the opened fd, so the container gets exactly what was checked even if the volume's
//! contents change afterwards (upstream's pkg/volume/util/subpath).

mod beneath;
mod expand;

use crate::error::{MountError, PathIo};
use crate::mountinfo;
use k8s_openapi::api::core::v1::{Container, VolumeMount};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{SFlag, fstat};
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

pub use expand::ExpandError;

/// The mount's subPath (subPathExpr expanded), validated; `None` when it mounts the whole volume.
pub(crate) fn sub_path_of(
    mount: &VolumeMount,
    container: &Container,
) -> Result<Option<String>, MountError> {
    let sub_path = match mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        Some(expr) => expand::expand_subpath_expr(expr, container)?,
        None => mount.sub_path.clone().unwrap_or_default(),
    };
    if sub_path.is_empty() {
        return Ok(None);
    }
    if sub_path.starts_with('/') {
        return Err(MountError::AbsoluteSubPath(sub_path));
    }
    if sub_path.split('/').any(|c| c == "..") {
        return Err(MountError::SubPathBacksteps(sub_path));
    }
    Ok(Some(sub_path))
}

/// Resolves `sub_path` beneath `volume_root` and bind-mounts it onto `target` (a file or a
/// directory to match). An existing bind of the same object at `target` is kept.
pub(crate) fn bind(volume_root: &Path, sub_path: &str, target: &Path) -> Result<(), MountError> {
    let root =
        fs::canonicalize(volume_root).map_err(|e| PathIo::new("resolve volume", volume_root, e))?;
    let fd = beneath::open_beneath(&root, sub_path)?;
    pin(&fd, target)
}

fn pin(fd: &OwnedFd, target: &Path) -> Result<(), MountError> {
    let source = fstat(fd).map_err(|e| PathIo::new("inspect the subPath for", target, e))?;
    let is_dir = SFlag::from_bits_truncate(source.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.dev() == source.st_dev && meta.ino() == source.st_ino => return Ok(()),
        Ok(meta) => {
            unmount_stale(target)?;
            if meta.is_dir() != is_dir {
                let removed = if meta.is_dir() {
                    fs::remove_dir(target)
                } else {
                    fs::remove_file(target)
                };
                removed.map_err(|e| PathIo::new("remove", target, e))?;
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(PathIo::new("inspect", target, e).into()),
    }
    create_target(target, is_dir)?;
    // The magic link names the object the fd holds, not a path that could be re-resolved.
    let source_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::mount::mount(
        Some(source_path.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| PathIo::new("bind-mount the subPath onto", target, e))?;
    tracing::debug!(target = %target.display(), "bind-mounted subPath");
    Ok(())
}

/// A bind left by an earlier run that no longer matches what the subPath resolves to.
fn unmount_stale(target: &Path) -> Result<(), MountError> {
    let canonical = fs::canonicalize(target).map_err(|e| PathIo::new("resolve", target, e))?;
    if mountinfo::fs_type_at(&canonical)
        .map_err(|e| PathIo::new("read the mounts for", target, e))?
        .is_some()
    {
        match nix::mount::umount2(&canonical, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(PathIo::new("unmount stale subPath", target, e).into()),
        }
    }
    Ok(())
}

fn create_target(target: &Path, is_dir: bool) -> Result<(), MountError> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| PathIo::new("create directory", parent, e))?;
    }
    let created = if is_dir {
        fs::create_dir(target)
    } else {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(target)
            .map(drop)
    };
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(PathIo::new("create subPath mount point", target, e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(sub_path: &str, expr: &str) -> VolumeMount {
        VolumeMount {
            name: "v".into(),
            mount_path: "/m".into(),
            sub_path: Some(sub_path.into()).filter(|s: &String| !s.is_empty()),
            sub_path_expr: Some(expr.into()).filter(|s: &String| !s.is_empty()),
            ..Default::default()
        }
    }

    #[test]
    fn validates_sub_paths() {
        let c = Container::default();
        assert_eq!(sub_path_of(&mount("", ""), &c).unwrap(), None);
        assert_eq!(
            sub_path_of(&mount("a/b", ""), &c).unwrap().as_deref(),
            Some("a/b")
        );
        assert!(matches!(
            sub_path_of(&mount("/etc", ""), &c),
            Err(MountError::AbsoluteSubPath(_))
        ));
        assert!(matches!(
            sub_path_of(&mount("a/../../b", ""), &c),
            Err(MountError::SubPathBacksteps(_))
        ));
        assert!(matches!(
            sub_path_of(&mount("..", ""), &c),
            Err(MountError::SubPathBacksteps(_))
        ));
        assert!(matches!(sub_path_of(&mount("a/..b", ""), &c), Ok(Some(_))));
    }

    #[test]
    fn expanded_expressions_are_validated_too() {
        let c = Container {
            env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
                name: "UP".into(),
                value: Some("..".into()),
                value_from: None,
            }]),
            ..Default::default()
        };
        assert!(matches!(
            sub_path_of(&mount("", "$(UP)/x"), &c),
            Err(MountError::SubPathBacksteps(_))
        ));
    }
}
