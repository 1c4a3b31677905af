//! Opening a path beneath a directory without ever leaving it. Each component is opened with
//! openat(O_PATH | O_NOFOLLOW) relative to the directory fd before it, so nothing can be
//! swapped in between; symlinks are resolved here, by hand, beneath the root, and refused when
//! they point outside of it. Missing components are created as directories, as upstream does.

use crate::error::{MountError, PathIo};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, mkdirat};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// Linux's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: u32 = 40;

/// One opened directory on the way down, with its path relative to the root for messages.
struct Step {
    fd: OwnedFd,
    path: PathBuf,
}

/// Opens `sub_path` beneath the directory `root` (a canonical path) and returns an O_PATH fd of
/// what it names. `sub_path` must already be relative and free of `..`.
pub(crate) fn open_beneath(root: &Path, sub_path: &str) -> Result<OwnedFd, MountError> {
    let root_fd = open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| PathIo::new("open volume", root, e))?;
    // New directories get the mode of the volume root, like upstream's SafeMakeDir.
    let root_mode = fstat(&root_fd)
        .map_err(|e| PathIo::new("inspect volume", root, e))?
        .st_mode
        & 0o777;
    let dir_mode = Mode::from_bits_truncate(root_mode);

    let mut stack: Vec<Step> = Vec::new();
    let mut pending: VecDeque<OsString> = names(Path::new(sub_path)).collect();
    let mut symlinks = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            // Only a symlink target can bring `..` here; at the root it would climb out.
            if stack.pop().is_none() {
                return Err(MountError::SymlinkEscapes {
                    sub_path: sub_path.to_owned(),
                    at: sub_path.to_owned(),
                });
            }
            continue;
        }
        let parent = stack.last().map_or(&root_fd, |s| &s.fd);
        let path = stack
            .last()
            .map_or_else(PathBuf::new, |s| s.path.clone())
            .join(&name);
        let fd = match openat(
            parent,
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => match create_dir(parent, &name, dir_mode, &root.join(&path))? {
                Some(fd) => fd,
                None => {
                    // Someone else created it meanwhile: look at it again like any other entry.
                    pending.push_front(name);
                    continue;
                }
            },
            Err(e) => return Err(PathIo::new("open", root.join(&path), e).into()),
        };
        let kind = SFlag::from_bits_truncate(
            fstat(&fd)
                .map_err(|e| PathIo::new("inspect", root.join(&path), e))?
                .st_mode
                & SFlag::S_IFMT.bits(),
        );
        if kind == SFlag::S_IFLNK {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(MountError::TooManySymlinks(sub_path.to_owned()));
            }
            let target = PathBuf::from(
                readlinkat(parent, name.as_os_str())
                    .map_err(|e| PathIo::new("read symlink", root.join(&path), e))?,
            );
            let escapes = || MountError::SymlinkEscapes {
                sub_path: sub_path.to_owned(),
                at: path.display().to_string(),
            };
            let relative = if target.is_absolute() {
                // An absolute target is a host path: fine only when it names something inside.
                let inside = target.strip_prefix(root).map_err(|_| escapes())?.to_owned();
                stack.clear();
                inside
            } else {
                target
            };
            for component in names(&relative).collect::<Vec<_>>().into_iter().rev() {
                pending.push_front(component);
            }
            continue;
        }
        if kind != SFlag::S_IFDIR && pending.iter().any(|n| n != ".") {
            return Err(MountError::NotADirectory {
                sub_path: sub_path.to_owned(),
                at: path.display().to_string(),
            });
        }
        stack.push(Step { fd, path });
    }
    Ok(stack.pop().map_or(root_fd, |s| s.fd))
}

/// The names of a relative path in order, `.` dropped, `..` kept for the walk to handle.
fn names(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_owned()),
        Component::ParentDir => Some(OsStr::new("..").to_owned()),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// Creates one directory with `mode` (past the umask); `None` when it appeared meanwhile.
fn create_dir(
    parent: &OwnedFd,
    name: &OsStr,
    mode: Mode,
    shown: &Path,
) -> Result<Option<OwnedFd>, MountError> {
    match mkdirat(parent, name, mode) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(None),
        Err(e) => return Err(PathIo::new("create directory", shown, e).into()),
    }
    let fd = openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| PathIo::new("open", shown, e))?;
    fchmod(&fd, mode).map_err(|e| PathIo::new("set the mode of", shown, e))?;
    tracing::debug!(path = %shown.display(), "created missing subPath directory");
    Ok(Some(fd))
}
