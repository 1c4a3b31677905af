//! File system operations confined to a layer's root directory: every parent is resolved with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no path, however the tar spells it, and
//! no symlink an earlier entry planted, can reach outside the root.

use crate::error::ImageError;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A path inside the layer: its normal components, checked by [`components`].
pub(super) type Components = Vec<OsString>;

/// Splits a tar path into components, refusing `..` and absolute paths.
pub(super) fn components(entry: &Path) -> Result<Components, ImageError> {
    let unsafe_entry = |reason| ImageError::UnsafeEntry {
        entry: entry.display().to_string(),
        reason,
    };
    let mut out = Vec::new();
    for c in entry.components() {
        match c {
            std::path::Component::Normal(s) => out.push(s.to_os_string()),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => return Err(unsafe_entry("the path contains ..")),
            std::path::Component::RootDir | std::path::Component::Prefix(_) => {
                return Err(unsafe_entry("the path is absolute"));
            }
        }
    }
    Ok(out)
}

pub(super) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root, ImageError> {
        let fd = rfs::open(path, DIR_FLAGS, Mode::empty())
            .map_err(|e| crate::error::rio("open", path, e))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub fn path_of(&self, comps: &[OsString]) -> PathBuf {
        comps.iter().fold(self.path.clone(), |p, c| p.join(c))
    }

    /// Opens the directory `comps` beneath the root; with `create`, missing directories are made
    /// (mode 0755, root-owned, as containerd does for parents a layer leaves out).
    pub fn dir(&self, comps: &[OsString], create: bool) -> Result<OwnedFd, ImageError> {
        if comps.is_empty() {
            return self
                .fd
                .try_clone()
                .map_err(|e| ImageError::io("dup", &self.path, e));
        }
        let joined: PathBuf = comps.iter().collect();
        match rfs::openat2(&self.fd, &joined, DIR_FLAGS, Mode::empty(), RESOLVE) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) if create => {}
            Err(e) => return Err(self.resolve_error(&joined, e)),
        }
        let mut fd = self.dir(&[], false)?;
        for (i, c) in comps.iter().enumerate() {
            match rfs::mkdirat(&fd, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(crate::error::rio("create", self.path_of(&comps[..=i]), e)),
            }
            fd = rfs::openat2(&fd, c.as_os_str(), DIR_FLAGS, Mode::empty(), RESOLVE)
                .map_err(|e| self.resolve_error(&joined, e))?;
        }
        Ok(fd)
    }

    fn resolve_error(&self, rel: &Path, e: Errno) -> ImageError {
        let reason = match e {
            Errno::LOOP => "a parent directory is a symlink, which could lead outside the layer",
            Errno::XDEV => "the path leads outside the layer",
            // O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR, not ELOOP.
            Errno::NOTDIR => "a parent of the path is a symlink or not a directory",
            Errno::NOENT => "a parent directory does not exist",
            _ => return crate::error::rio("open", self.path.join(rel), e),
        };
        ImageError::UnsafeEntry {
            entry: rel.display().to_string(),
            reason,
        }
    }

    /// Makes room for a new entry `name` in `dir`: an existing non-directory is removed, and so is
    /// an existing directory unless the new entry is a directory too (then it is kept, as tar
    /// does). Returns whether a directory was kept.
    pub fn clear(
        &self,
        dir: &OwnedFd,
        comps: &[OsString],
        name: &OsStr,
        new_is_dir: bool,
    ) -> Result<bool, ImageError> {
        let path = self.path_of(comps);
        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(crate::error::rio("stat", path, e)),
            Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
                if new_is_dir {
                    return Ok(true);
                }
                // The parents were just resolved without symlinks, and remove_dir_all does not
                // follow symlinks inside the tree.
                std::fs::remove_dir_all(&path).map_err(|e| ImageError::io("remove", &path, e))?;
                Ok(false)
            }
            Ok(_) => {
                rfs::unlinkat(dir, name, AtFlags::empty())
                    .map_err(|e| crate::error::rio("remove", &path, e))?;
                Ok(false)
            }
        }
    }
}

/// The `/proc/self/fd/N/NAME` path of `name` in the open directory `dir`, for calls with no
/// `*at` form (lsetxattr on a symlink or a device node, which must not be opened).
pub(super) fn proc_path(dir: &impl AsFd, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd())).join(name)
}
