//! Tearing a pod's directory down from what is on disk alone, so it works after a restart:
//! every mount at or below the pod dir (tmpfs emptyDirs, subPath binds, anything propagated
//! back from a container) is unmounted, deepest first; only then is the tree removed, so a
//! mount that would not go away can never lead the removal into a host directory.

use crate::error::{PathIo, VolumeError};
use crate::layout::PodDir;
use crate::mountinfo;
use nix::errno::Errno;
use nix::mount::MntFlags;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

/// Enough rounds for mounts stacked on one another; each round takes off the topmost ones.
const MAX_ROUNDS: usize = 8;

pub(crate) fn remove_pod_dir(dir: &PodDir, uid: &str) -> Result<(), VolumeError> {
    let path = dir.path();
    let failed = |cause: PathIo| VolumeError::Cleanup {
        uid: uid.to_owned(),
        cause,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed(PathIo::new("inspect", path, e))),
    };
    if !meta.is_dir() {
        // A symlink or stray file in its place: remove the entry, never what it points to.
        return fs::remove_file(path).map_err(|e| failed(PathIo::new("remove", path, e)));
    }
    let canonical = fs::canonicalize(path).map_err(|e| failed(PathIo::new("resolve", path, e)))?;
    let mounts_below = || {
        mountinfo::mount_points_under(&canonical)
            .map_err(|e| failed(PathIo::new("read the mounts under", path, e)))
    };
    for _ in 0..MAX_ROUNDS {
        let points = mounts_below()?;
        if points.is_empty() {
            break;
        }
        for point in points {
            unmount(&point).map_err(failed)?;
        }
    }
    if let Some(point) = mounts_below()?.into_iter().next() {
        return Err(VolumeError::StillMounted {
            uid: uid.to_owned(),
            path: point,
        });
    }
    // std's remove_dir_all never follows symlinks, so a link in a volume cannot redirect it.
    fs::remove_dir_all(path).map_err(|e| failed(PathIo::new("remove", path, e)))?;
    tracing::info!(pod_uid = uid, "removed pod volumes and directory");
    Ok(())
}

fn unmount(point: &Path) -> Result<(), PathIo> {
    match nix::mount::umount2(point, MntFlags::UMOUNT_NOFOLLOW) {
        // Gone already (unmounted meanwhile, or its path vanished with a parent mount).
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => {
            // Something still holds it open: detach it from the tree; the kernel frees it later.
            tracing::warn!(path = %point.display(), "mount busy, detaching it lazily");
            nix::mount::umount2(point, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
                .map_err(|e| PathIo::new("unmount", point, e))
        }
        Err(e) => Err(PathIo::new("unmount", point, e)),
    }
}
