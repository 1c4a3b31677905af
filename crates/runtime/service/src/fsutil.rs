//! Removing a directory tree that may still have mounts in it (a container's rootfs, a pod's
//! namespace pins or shm): the mounts go first, so that removing files never reaches through a
//! mount into an image snapshot, a host path or a namespace.

use crate::ServiceError;
use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};
use std::io;
use std::path::{Path, PathBuf};

/// Mount points at or below `dir`, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>, ServiceError> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(ServiceError::io("read", "/proc/self/mountinfo"))?;
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|point| point.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    Ok(found)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = std::str::from_utf8(bytes.get(i + 1..i + 4).unwrap_or_default())
            .ok()
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        if let (b'\\', Some(code)) = (bytes[i], code) {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// umount2(MNT_DETACH); "not mounted" and "missing" are done already.
pub(crate) fn unmount(path: &Path) -> Result<(), ServiceError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(ServiceError::Io {
            op: "unmount",
            path: path.to_path_buf(),
            source: errno.into(),
        }),
    }
}

/// Unmounts everything below `dir`, then removes it; a missing dir is fine. Refuses (rather than
/// deleting through a mount) when a mount survives.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), ServiceError> {
    for point in mounts_under(dir)? {
        unmount(&point)?;
    }
    if let Some(left) = mounts_under(dir)?.first() {
        return Err(ServiceError::Internal(format!(
            "cannot remove {}: {} is still mounted",
            dir.display(),
            left.display()
        )));
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ServiceError::Io {
            op: "remove",
            path: dir.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\"), "/end\\");
    }
}
