//! A container's root file system: an overlay of the image's snapshots (read-only lowers) and
//! the container's own upper and work dirs.

use crate::error::ImageError;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What the kernel accepts as mount data: one page.
const MAX_OPTIONS: usize = 4096;

/// Mounts an overlay of `lowers` (uppermost first) with `upper` and `work` onto `target`.
///
/// Each lower dir is named by an O_PATH descriptor (`/proc/self/fd/N`, about 17 bytes) rather
/// than by its path: a snapshot path is over 100 bytes, so a few dozen layers would not fit in
/// the page of mount options. The kernel resolves the names while mounting, after which the
/// descriptors can go. This needs no chdir, which would move every thread of the daemon.
pub fn mount_rootfs(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), ImageError> {
    let err = |cause: String| ImageError::Mount {
        target: target.to_path_buf(),
        cause,
    };
    if lowers.is_empty() {
        return Err(err("an overlay needs at least one lower dir".into()));
    }
    let fds = lowers
        .iter()
        .map(|dir| {
            rustix::fs::open(
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err(format!("open lower dir {}: {e}", dir.display())))
        })
        .collect::<Result<Vec<OwnedFd>, _>>()?;
    let lowerdir: Vec<String> = fds
        .iter()
        .map(|fd| format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        option_path(upper).map_err(&err)?,
        option_path(work).map_err(&err)?,
    );
    if options.len() >= MAX_OPTIONS {
        return Err(err(format!(
            "{} layers give {} bytes of mount options, over the kernel's {MAX_OPTIONS}",
            lowers.len(),
            options.len()
        )));
    }
    let data = CString::new(options).map_err(|e| err(e.to_string()))?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| err(format!("mount overlay of {} layers: {e}", lowers.len())))?;
    drop(fds);
    Ok(())
}

/// A path as an overlay option value: the option syntax has no quoting for `,` and `:`.
fn option_path(path: &Path) -> Result<String, String> {
    let s = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    if s.contains([',', ':']) {
        return Err(format!(
            "{s} holds a ',' or ':', which overlay options cannot carry"
        ));
    }
    Ok(s.to_string())
}

/// Unmounts the root file system at `target` (lazily, so a process still inside does not make
/// it fail); a target that is not mounted, or gone, is fine.
pub fn unmount_rootfs(target: &Path) -> Result<(), ImageError> {
    match rustix::mount::unmount(target, UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => Ok(()),
        Err(e) => Err(ImageError::Mount {
            target: target.to_path_buf(),
            cause: format!("unmount: {e}"),
        }),
    }
}
