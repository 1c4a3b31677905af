//! Removing test cgroups. runc removes only a container's own cgroup; the pod-level directories
//! above it stay behind in every hierarchy until someone removes them, deepest first, with
//! rmdir (a cgroup directory cannot be emptied file by file).

use std::io;
use std::path::{Path, PathBuf};

/// Removes the cgroup `path` (absolute in the cgroup namespace) and its children from every
/// mounted hierarchy, v1 and v2.
pub(crate) fn remove_tree(path: &str) -> io::Result<()> {
    let relative = path.trim_start_matches('/');
    for mount in mount_points()? {
        remove_dirs_deepest_first(&mount.join(relative))?;
    }
    Ok(())
}

/// The mount points of cgroup filesystems, from /proc/self/mountinfo.
fn mount_points() -> io::Result<Vec<PathBuf>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mountinfo.lines().filter_map(cgroup_mount_point).collect())
}

/// A mountinfo line's mount point when its filesystem is cgroup or cgroup2. Optional fields
/// shift the columns, so the type is the field after the "-" separator.
fn cgroup_mount_point(line: &str) -> Option<PathBuf> {
    let fields: Vec<&str> = line.split(' ').collect();
    let separator = fields.iter().skip(6).position(|field| *field == "-")? + 6;
    match fields.get(separator + 1) {
        Some(&"cgroup" | &"cgroup2") => fields.get(4).map(PathBuf::from),
        _ => None,
    }
}

fn remove_dirs_deepest_first(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_dirs_deepest_first(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
            err.kind(),
            format!("cannot remove cgroup {}: {err}", dir.display()),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup_mounts_with_and_without_optional_fields() {
        let v1 =
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:15 - cgroup cgroup rw,memory";
        let v2 = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        let tmpfs = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755";
        assert_eq!(
            cgroup_mount_point(v1),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            cgroup_mount_point(v2),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup_mount_point(tmpfs), None);
    }

    #[test]
    fn removes_nested_dirs_and_ignores_missing_ones() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("pod1");
        std::fs::create_dir_all(top.join("c1/sub")).unwrap();
        std::fs::create_dir_all(top.join("c2")).unwrap();
        remove_dirs_deepest_first(&top).unwrap();
        assert!(!top.exists());
        remove_dirs_deepest_first(&top).unwrap();
    }
}
