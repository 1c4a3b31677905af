//! The cgroup filesystems: where they are mounted with which controllers, the processes in a
//! cgroup tree, and removing a tree. A cgroup directory cannot be emptied file by file; it goes
//! with rmdir once its children have, so a tree goes deepest first.

use crate::{HostError, read};
use std::io;
use std::path::{Path, PathBuf};

/// A mounted cgroup hierarchy: a v1 one with its controllers (and `name=` options), or the v2
/// unified one, whose controllers are listed in its cgroup.controllers file instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub controllers: Vec<String>,
    pub v2: bool,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// Every mounted cgroup hierarchy, from /proc/self/mountinfo.
pub fn hierarchies() -> Result<Vec<Hierarchy>, HostError> {
    Ok(read("/proc/self/mountinfo")?
        .lines()
        .filter_map(cgroup_hierarchy)
        .collect())
}

/// The mount points of every cgroup filesystem (each v1 hierarchy, and cgroup2).
pub fn mount_points() -> Result<Vec<PathBuf>, HostError> {
    Ok(hierarchies()?.into_iter().map(|h| h.mount).collect())
}

/// A mountinfo line's hierarchy when its filesystem is cgroup or cgroup2. Optional fields
/// shift the columns, so the type is the field after the "-" separator.
fn cgroup_hierarchy(line: &str) -> Option<Hierarchy> {
    let fields: Vec<&str> = line.split(' ').collect();
    let separator = fields.iter().skip(6).position(|field| *field == "-")? + 6;
    let mount = PathBuf::from(fields.get(4)?);
    match fields.get(separator + 1) {
        Some(&"cgroup") => Some(Hierarchy {
            mount,
            controllers: fields
                .get(separator + 3)
                .map(|opts| opts.split(',').map(String::from).collect())
                .unwrap_or_default(),
            v2: false,
        }),
        Some(&"cgroup2") => Some(Hierarchy {
            mount,
            controllers: Vec::new(),
            v2: true,
        }),
        _ => None,
    }
}

/// The processes in the cgroup `dir` and every cgroup below it; a missing directory has none.
pub fn tree_pids(dir: &Path) -> Result<Vec<i32>, HostError> {
    let failed = |path: &Path, source| HostError::Read {
        path: path.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(failed(dir, err)),
    };
    let mut pids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| failed(dir, err))?;
        if entry.file_type().map_err(|err| failed(dir, err))?.is_dir() {
            pids.extend(tree_pids(&entry.path())?);
        }
    }
    let procs = dir.join("cgroup.procs");
    match std::fs::read_to_string(&procs) {
        Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(failed(&procs, err)),
    }
    Ok(pids)
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
        let v1 = "35 31 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct";
        let v2 = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        let tmpfs = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755";
        let v1 = cgroup_hierarchy(v1).unwrap();
        assert_eq!(v1.mount, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(v1.has("cpu") && v1.has("cpuacct") && !v1.v2);
        assert_eq!(
            cgroup_hierarchy(v2),
            Some(Hierarchy {
                mount: PathBuf::from("/sys/fs/cgroup/unified"),
                controllers: Vec::new(),
                v2: true,
            })
        );
        assert_eq!(cgroup_hierarchy(tmpfs), None);
    }

    #[test]
    fn lists_the_processes_of_a_tree() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("pod1");
        std::fs::create_dir_all(top.join("c1")).unwrap();
        std::fs::write(top.join("cgroup.procs"), "10\n").unwrap();
        std::fs::write(top.join("c1/cgroup.procs"), "11\n12\n").unwrap();
        let mut pids = tree_pids(&top).unwrap();
        pids.sort();
        assert_eq!(pids, vec![10, 11, 12]);
        assert!(tree_pids(&root.path().join("gone")).unwrap().is_empty());
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
