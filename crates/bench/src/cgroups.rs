//! The bench's cgroups: finding a container's processes (to kill them from outside) and removing
//! the pod cgroups under the bench's cgroup root at the end. runc removes only a container's own
//! cgroup; the directories above it stay until someone rmdirs them, deepest first.

use crate::error::{BenchError, Result};
use std::path::{Path, PathBuf};

/// The pids in the cgroup of container `container_id`, somewhere under `root` (the pod cgroup
/// layout is the subject's business, so the bench searches rather than assume it).
pub fn container_pids(root: &str, container_id: &str) -> Result<Vec<i32>> {
    for mount in kubelet_host::cgroupfs::mount_points()? {
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

/// Creates `root` in every hierarchy: the upstream kubelet refuses a --cgroup-root that is missing
/// from any of them. A new cpuset cgroup (v1) starts with no CPUs or memory nodes, so it takes its
/// parent's.
pub fn create_root(root: &str) -> Result<()> {
    for mount in kubelet_host::cgroupfs::mount_points()? {
        let dir = mount.join(root.trim_start_matches('/'));
        std::fs::create_dir_all(&dir)
            .map_err(|err| BenchError::io(format!("create cgroup {}", dir.display()), err))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            inherit(&dir, file)?;
        }
    }
    Ok(())
}

/// Copies `file` from the parent of `dir` when both have it and `dir`'s is empty.
fn inherit(dir: &Path, file: &str) -> Result<()> {
    let own = dir.join(file);
    let Some(parent) = dir.parent().map(|p| p.join(file)) else {
        return Ok(());
    };
    let (Ok(current), Ok(from_parent)) = (
        std::fs::read_to_string(&own),
        std::fs::read_to_string(&parent),
    ) else {
        return Ok(());
    };
    if current.trim().is_empty() {
        std::fs::write(&own, from_parent.trim())
            .map_err(|err| BenchError::io(format!("write {}", own.display()), err))?;
    }
    Ok(())
}

/// Removes `root` and everything below it from every hierarchy, deepest first. Missing
/// directories are fine; a cgroup that still has processes is an error.
pub fn remove_tree(root: &str) -> Result<()> {
    Ok(kubelet_host::cgroupfs::remove_everywhere(root)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_cgroup_is_found_at_any_depth() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("kubepods/besteffort/podabc/0123abcd");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_dir(tmp.path(), "0123abcd"), Some(deep));
        assert_eq!(find_dir(tmp.path(), "missing"), None);
    }
}
