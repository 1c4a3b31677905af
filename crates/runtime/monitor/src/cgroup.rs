//! The monitor's own cgroup and the container's OOM-kill counter.
//!
//! A monitor leaves the daemon's cgroup at start, so stopping the daemon's service (systemd's
//! KillMode=control-group kills every process of the unit's cgroup) cannot take it along. With
//! cgroupfs it moves to `<cgroup_parent>/monitor-<id>` in every hierarchy, v1 and v2, as CRI-O
//! places conmon in the pod's cgroup. With the systemd driver systemd owns the cgroups, so the
//! monitor asks it for a transient scope instead ([`crate::scope`]).

use crate::config::MonitorCgroup;
use crate::scope;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// v1 mount options that name no controller.
const NOT_CONTROLLERS: &[&str] = &[
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "none",
];

/// A mounted hierarchy: its mount point and, for v1, its controllers (`name=systemd` included).
#[derive(Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub v2: bool,
    pub controllers: Vec<String>,
}

/// The cgroup hierarchies mounted under /sys/fs/cgroup, from /proc/self/mountinfo.
pub fn hierarchies() -> io::Result<Vec<Hierarchy>> {
    Ok(parse_mountinfo(&fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    text.lines()
        .filter_map(|line| {
            let (mount_fields, fs_fields) = line.split_once(" - ")?;
            let mount = mount_fields.split(' ').nth(4)?;
            let mut fs = fs_fields.split(' ');
            let v2 = match fs.next()? {
                "cgroup" => false,
                "cgroup2" => true,
                _ => return None,
            };
            if !Path::new(mount).starts_with(CGROUP_ROOT) {
                return None;
            }
            let options = fs.nth(1).unwrap_or_default();
            let controllers = if v2 {
                Vec::new()
            } else {
                options
                    .split(',')
                    .filter(|o| !NOT_CONTROLLERS.contains(o) && !o.starts_with("release_agent="))
                    .map(str::to_string)
                    .collect()
            };
            Some(Hierarchy {
                mount: PathBuf::from(mount),
                v2,
                controllers,
            })
        })
        .collect()
}

/// A cgroup the monitor joined, and the root of its hierarchy.
#[derive(Debug)]
pub struct Joined {
    mount: PathBuf,
    dir: PathBuf,
}

/// Moves this monitor out of the daemon's cgroup, as `placement` says. Returns the cgroupfs
/// cgroups joined, for [`leave`]; a scope needs no undo (systemd removes it once it is empty).
pub fn place(container_id: &str, placement: &MonitorCgroup) -> Result<Vec<Joined>, String> {
    let failed = |e: &dyn std::fmt::Display| format!("cannot leave the daemon's cgroup: {e}");
    match placement {
        MonitorCgroup::Cgroupfs { parent } => {
            join(&monitor_cgroup(parent.as_deref(), container_id)).map_err(|e| failed(&e))
        }
        MonitorCgroup::SystemdScope { slice } => {
            let unit = scope::unit_name(container_id);
            scope::start(&unit, slice, std::process::id()).map_err(|e| failed(&e))?;
            tracing::info!(unit, slice, "in its own transient scope");
            Ok(Vec::new())
        }
    }
}

/// The monitor's cgroupfs cgroup, relative to each hierarchy's root (no leading slash).
fn monitor_cgroup(parent: Option<&str>, container_id: &str) -> PathBuf {
    let parent = parent.unwrap_or("/").trim_start_matches('/');
    Path::new(parent).join(format!("monitor-{container_id}"))
}

/// Moves this process into `relative` (no leading slash) in every hierarchy, creating it.
/// Returns the cgroups joined, to leave and remove when the monitor ends.
fn join(relative: &Path) -> io::Result<Vec<Joined>> {
    let mut joined = Vec::new();
    for hierarchy in hierarchies()? {
        let dir = hierarchy.mount.join(relative);
        let cpuset = hierarchy.controllers.iter().any(|c| c == "cpuset");
        create_dirs(&hierarchy.mount, relative, cpuset)?;
        fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot join {}: {e}", dir.display())))?;
        joined.push(Joined {
            mount: hierarchy.mount,
            dir,
        });
    }
    Ok(joined)
}

/// mkdir -p below the mount. A new v1 cpuset cgroup starts with no cpus and mems, and a
/// process cannot join it until they are set: copy them from the parent, as runc does.
fn create_dirs(mount: &Path, relative: &Path, cpuset: bool) -> io::Result<()> {
    let mut dir = mount.to_path_buf();
    for part in relative.components() {
        let parent = dir.clone();
        dir.push(part);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", dir.display()),
                ));
            }
        }
        if cpuset {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if fs::read_to_string(dir.join(file))?.trim().is_empty() {
                    fs::write(
                        dir.join(file),
                        fs::read_to_string(parent.join(file))?.trim(),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Leaves the joined cgroups for each hierarchy's root and removes them (the monitor is about
/// to exit; the pod's cgroups above are the daemon's to remove).
pub fn leave(joined: &[Joined]) {
    for Joined { mount, dir } in joined {
        let moved = fs::write(mount.join("cgroup.procs"), std::process::id().to_string());
        if let Err(error) = moved.and_then(|()| fs::remove_dir(dir)) {
            tracing::warn!(dir = %dir.display(), %error, "cannot remove the monitor's cgroup");
        }
    }
}

/// Where a container's OOM kills are counted: v1 memory.oom_control or v2 memory.events,
/// both with an `oom_kill N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomCounter {
    pub file: PathBuf,
}

impl OomCounter {
    /// The counter of the memory cgroup `pid` is in, read from /proc/PID/cgroup.
    pub fn of_process(pid: i32) -> Option<OomCounter> {
        let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let hierarchies = hierarchies().ok()?;
        Self::find(&cgroups, &hierarchies).filter(|c| c.file.exists())
    }

    fn find(proc_cgroup: &str, hierarchies: &[Hierarchy]) -> Option<OomCounter> {
        let mut v2_path = None;
        for line in proc_cgroup.lines() {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let path = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "memory") {
                let mount = hierarchies
                    .iter()
                    .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "memory"))?;
                return Some(OomCounter {
                    file: mount.mount.join(path).join("memory.oom_control"),
                });
            }
            if controllers.is_empty() {
                v2_path = Some(path.to_string());
            }
        }
        let unified = hierarchies.iter().find(|h| h.v2)?;
        Some(OomCounter {
            file: unified.mount.join(v2_path?).join("memory.events"),
        })
    }

    pub fn read(&self) -> Option<u64> {
        parse_oom_kill(&fs::read_to_string(&self.file).ok()?)
    }
}

fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:40 / /mnt/other rw,relatime - cgroup cgroup rw,hugetlb
";

    #[test]
    fn hierarchies_from_mountinfo() {
        let found = parse_mountinfo(MOUNTINFO);
        let mounts: Vec<_> = found.iter().map(|h| h.mount.to_str().unwrap()).collect();
        assert_eq!(
            mounts,
            [
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified"
            ]
        );
        assert_eq!(found[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(found[2].controllers, ["name=systemd"]);
        assert!(found[3].v2);
    }

    #[test]
    fn oom_counter_prefers_the_v1_memory_hierarchy() {
        let hierarchies = parse_mountinfo(MOUNTINFO);
        let v1 =
            "4:memory:/kubepods/pod1/c1\n1:cpu,cpuacct:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n";
        assert_eq!(
            OomCounter::find(v1, &hierarchies).unwrap().file,
            Path::new("/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.oom_control")
        );
        assert_eq!(
            OomCounter::find("0::/kubepods/pod1/c1\n", &hierarchies)
                .unwrap()
                .file,
            Path::new("/sys/fs/cgroup/unified/kubepods/pod1/c1/memory.events")
        );
    }

    #[test]
    fn monitor_cgroup_sits_under_the_pod() {
        assert_eq!(
            monitor_cgroup(Some("/kubepods/pod1"), "c1"),
            Path::new("kubepods/pod1/monitor-c1")
        );
        assert_eq!(monitor_cgroup(None, "c1"), Path::new("monitor-c1"));
    }

    #[test]
    fn oom_kill_line() {
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(parse_oom_kill("oom_kill_disable 0\n"), None);
    }
}
