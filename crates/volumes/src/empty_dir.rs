//! emptyDir: a directory under the pod dir, or a tmpfs there for medium Memory.

use crate::error::{PathIo, SetupError};
use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::statfs::{TMPFS_MAGIC, statfs};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Upstream makes the directory world-writable so any container user can use it.
const DIR_MODE: u32 = 0o777;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Medium {
    Disk,
    /// tmpfs; `size_limit` in bytes, or the kernel's default size when unset.
    Memory {
        size_limit: Option<u64>,
    },
}

impl Medium {
    pub(crate) fn of(source: Option<&EmptyDirVolumeSource>) -> Result<Self, SetupError> {
        let medium = source.and_then(|s| s.medium.as_deref()).unwrap_or("");
        match medium {
            "" => Ok(Medium::Disk),
            "Memory" => {
                let size_limit = match source.and_then(|s| s.size_limit.as_ref()) {
                    None => None,
                    Some(q) => match kubelet_quantity::value(&q.0).map(u64::try_from) {
                        Ok(Ok(0)) => None,
                        Ok(Ok(bytes)) => Some(bytes),
                        Ok(Err(_)) | Err(_) => {
                            return Err(SetupError::InvalidSizeLimit(q.0.clone()));
                        }
                    },
                };
                Ok(Medium::Memory { size_limit })
            }
            other => Err(SetupError::UnsupportedMedium(other.to_owned())),
        }
    }
}

/// One step a setup took, so a failed pod setup can take exactly it back.
#[derive(Debug)]
pub(crate) enum Undo {
    Unmount(PathBuf),
    RemoveDir(PathBuf),
    /// A directory that got contents of ours (never a mount: those are undone before).
    RemoveTree(PathBuf),
}

impl Undo {
    pub(crate) fn run(self) {
        let result = match &self {
            Undo::Unmount(path) => {
                nix::mount::umount2(path, MntFlags::UMOUNT_NOFOLLOW).map_err(std::io::Error::from)
            }
            Undo::RemoveDir(path) => fs::remove_dir(path),
            Undo::RemoveTree(path) => fs::remove_dir_all(path),
        };
        if let Err(error) = result {
            tracing::warn!(step = ?self, %error, "cannot undo a volume setup step");
        }
    }
}

/// Sets the volume up at `path`; what already is in place (an earlier sync, a kubelet restart)
/// is kept as it is. Returns the steps taken, in order.
pub(crate) fn set_up(path: &Path, medium: Medium) -> Result<Vec<Undo>, SetupError> {
    let mut undo = Vec::new();
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(SetupError::NotADirectory(path.to_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| PathIo::new("create directory", parent, e))?;
            }
            fs::create_dir(path).map_err(|e| PathIo::new("create directory", path, e))?;
            undo.push(Undo::RemoveDir(path.to_owned()));
            // The umask would otherwise narrow the mode.
            if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE)) {
                undo.into_iter().rev().for_each(Undo::run);
                return Err(PathIo::new("set the mode of", path, e).into());
            }
        }
        Err(e) => return Err(PathIo::new("inspect", path, e).into()),
    }
    if let Medium::Memory { size_limit } = medium
        && let Err(e) = mount_tmpfs(path, size_limit, &mut undo)
    {
        undo.into_iter().rev().for_each(Undo::run);
        return Err(e);
    }
    Ok(undo)
}

/// Whether a tmpfs is mounted at exactly `dir` (a canonical path). Cheaper than reading the
/// mount table, which matters as every sync of a pod asks again: a mount root has another
/// device than its parent.
pub(crate) fn is_tmpfs_mount(dir: &Path) -> std::io::Result<bool> {
    let on_tmpfs = statfs(dir)?.filesystem_type() == TMPFS_MAGIC;
    let parent = dir.parent().unwrap_or(dir);
    Ok(on_tmpfs && fs::metadata(dir)?.dev() != fs::metadata(parent)?.dev())
}

fn mount_tmpfs(
    path: &Path,
    size_limit: Option<u64>,
    undo: &mut Vec<Undo>,
) -> Result<(), SetupError> {
    let canonical = fs::canonicalize(path).map_err(|e| PathIo::new("resolve", path, e))?;
    if is_tmpfs_mount(&canonical).map_err(|e| PathIo::new("inspect the mount at", path, e))? {
        return Ok(());
    }
    let options = size_limit.map(|bytes| format!("size={bytes}"));
    nix::mount::mount(
        Some("tmpfs"),
        &canonical,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        options.as_deref(),
    )
    .map_err(|e| PathIo::new("mount tmpfs on", path, e))?;
    tracing::debug!(path = %canonical.display(), ?size_limit, "mounted emptyDir tmpfs");
    undo.push(Undo::Unmount(canonical));
    Ok(())
}
