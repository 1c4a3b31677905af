//! The cgroup filesystems: where they are mounted, and removing a cgroup tree. A cgroup
//! directory cannot be emptied file by file; it goes with rmdir once its children have, so a
//! tree goes deepest first.

use crate::{HostError, read};
use std::io;
use std::path::{Path, PathBuf};

/// The mount points of every cgroup filesystem (each v1 hierarchy, and cgroup2), from
/// /proc/self/mountinfo.
pub fn mount_points() -> Result<Vec<PathBuf>, HostError> {
    Ok(read("/proc/self/mountinfo")?
        .lines()
        .filter_map(cgroup_mount_point)
        .collect())
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

/// Removes the cgroup directory `dir` and every cgroup below it, deepest first. A missing
/// directory is fine; a cgroup that still holds processes is an error naming it.
pub fn remove_tree(dir: &Path) -> Result<(), HostError> {
    let failed = |path: &Path, source| HostError::RemoveCgroup {
        path: path.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(failed(dir, err)),
    };
    for entry in entries {
        let entry = entry.map_err(|err| failed(dir, err))?;
        if entry.file_type().map_err(|err| failed(dir, err))?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(failed(dir, err)),
        _ => Ok(()),
    }
}

/// Removes the cgroup `path` (absolute in the cgroup namespace, such as "/kubepods/podX") and
/// its children from every mounted hierarchy.
pub fn remove_everywhere(path: &str) -> Result<(), HostError> {
    let relative = path.trim_start_matches('/');
    for mount in mount_points()? {
        remove_tree(&mount.join(relative))?;
    }
    Ok(())
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
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        remove_tree(&top).unwrap();
    }

    #[test]
    fn a_failure_names_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("pod1");
        std::fs::create_dir_all(&top).unwrap();
        // A plain file stands for a cgroup's interface files: rmdir of its dir fails.
        std::fs::write(top.join("cgroup.procs"), "1\n").unwrap();
        let err = remove_tree(&top).unwrap_err();
        assert!(err.to_string().contains("pod1"), "{err}");
    }
}
