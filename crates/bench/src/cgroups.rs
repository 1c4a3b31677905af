//! The bench's cgroups: finding a container's processes (to kill them from outside) and removing
//! the pod cgroups under the bench's cgroup root at the end. runc removes only a container's own
//! cgroup; the directories above it stay until someone rmdirs them, deepest first.

use crate::error::{BenchError, Result};
use std::io;
use std::path::{Path, PathBuf};

/// The mount points of the cgroup filesystems (every v1 hierarchy, and cgroup2).
fn mount_points() -> Result<Vec<PathBuf>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|err| BenchError::io("read /proc/self/mountinfo", err))?;
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

/// The pids in the cgroup of container `container_id`, somewhere under `root` (the pod cgroup
/// layout is the subject's business, so the bench searches rather than assume it).
pub fn container_pids(root: &str, container_id: &str) -> Result<Vec<i32>> {
    for mount in mount_points()? {
        let Some(dir) = find_dir(&mount.join(root.trim_start_matches('/')), container_id) else {
            continue;
        };
        let procs = std::fs::read_to_string(dir.join("cgroup.procs"))
            .map_err(|err| BenchError::io(format!("read {}/cgroup.procs", dir.display()), err))?;
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if !pids.is_empty() {
            return Ok(pids);
        }
    }
    Err(BenchError::NoContainerProcess {
        container: container_id.into(),
        root: root.into(),
    })
}

fn find_dir(dir: &Path, name: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if entry.file_name() == name {
            return Some(path);
        }
        if let Some(found) = find_dir(&path, name) {
            return Some(found);
        }
    }
    None
}

/// Removes `root` and everything below it from every hierarchy, deepest first. Missing
/// directories are fine; a cgroup that still has processes is an error.
pub fn remove_tree(root: &str) -> Result<()> {
    for mount in mount_points()? {
        remove_deepest_first(&mount.join(root.trim_start_matches('/')))
            .map_err(|err| BenchError::io(format!("remove cgroup {root}"), err))?;
    }
    Ok(())
}

fn remove_deepest_first(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_deepest_first(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
            err.kind(),
            format!("{}: {err}", dir.display()),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_come_from_the_field_after_the_separator() {
        let v1 = "30 25 0:26 / /sys/fs/cgroup/pids rw,nosuid shared:12 - cgroup cgroup rw,pids";
        let v2 = "29 25 0:25 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw";
        let other = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw";
        assert_eq!(
            cgroup_mount_point(v1),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        assert_eq!(
            cgroup_mount_point(v2),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup_mount_point(other), None);
    }

    #[test]
    fn a_container_cgroup_is_found_at_any_depth() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("kubepods/besteffort/podabc/0123abcd");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_dir(tmp.path(), "0123abcd"), Some(deep));
        assert_eq!(find_dir(tmp.path(), "missing"), None);
    }
}
