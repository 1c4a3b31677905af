//! One cgroup's CPU, memory and process figures, from the v1 controller files or the v2 unified
//! ones, computed as containerd computes them (so the kubelet's summary matches either way).

use crate::CgroupDriver;
use std::path::{Path, PathBuf};

/// A limit above this is no limit: the kernel rounds "unlimited" down to a page multiple
/// (containerd's isMemoryUnlimited).
const UNLIMITED: u64 = 1 << 62;

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Memory {
    pub(crate) usage: u64,
    /// Usage minus inactive file pages (cAdvisor's and the kubelet's definition).
    pub(crate) working_set: u64,
    /// The limit minus the working set; 0 without a limit.
    pub(crate) available: u64,
    pub(crate) rss: u64,
    pub(crate) page_faults: u64,
    pub(crate) major_page_faults: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Cumulative CPU time in nanoseconds.
    pub(crate) cpu_usage_ns: Option<u64>,
    pub(crate) memory: Option<Memory>,
    pub(crate) pids: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// One hierarchy per controller (cpuacct, memory, pids).
    V1,
    /// The unified hierarchy.
    V2,
}

/// The cgroup file system, v1 or v2, as the OCI runtime lays cgroups out for `driver`.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    root: PathBuf,
    version: Version,
    driver: CgroupDriver,
}

impl Cgroups {
    /// `root` is /sys/fs/cgroup but in tests: v2 when it holds cgroup.controllers.
    pub(crate) fn new(root: &Path, driver: CgroupDriver) -> Cgroups {
        let version = if root.join("cgroup.controllers").is_file() {
            Version::V2
        } else {
            Version::V1
        };
        Cgroups {
            root: root.to_path_buf(),
            version,
            driver,
        }
    }

    /// The figures of the cgroup an OCI runtime was given as `cgroups_path` (a pod's parent or
    /// a container's path); empty when there is none or it is gone.
    pub(crate) fn sample(&self, cgroups_path: &str) -> Sample {
        let Some(relative) = fs_path(self.driver, cgroups_path) else {
            return Sample::default();
        };
        let relative = relative.trim_start_matches('/');
        match self.version {
            Version::V1 => {
                let dir = |controller: &str| self.root.join(controller).join(relative);
                Sample {
                    cpu_usage_ns: read_u64(&dir("cpuacct").join("cpuacct.usage")),
                    memory: memory_v1(&dir("memory")),
                    pids: read_u64(&dir("pids").join("pids.current")),
                }
            }
            Version::V2 => {
                let dir = self.root.join(relative);
                let cpu = read_flat(&dir.join("cpu.stat"));
                Sample {
                    cpu_usage_ns: field(&cpu, "usage_usec").map(|us| us * 1000),
                    memory: memory_v2(&dir),
                    pids: read_u64(&dir.join("pids.current")),
                }
            }
        }
    }
}

fn memory_v1(dir: &Path) -> Option<Memory> {
    let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
    let stat = read_flat(&dir.join("memory.stat"));
    let limit = read_u64(&dir.join("memory.limit_in_bytes"));
    let working_set = working_set(usage, field(&stat, "total_inactive_file"));
    Some(Memory {
        usage,
        working_set,
        available: available(limit, working_set),
        rss: field(&stat, "total_rss").unwrap_or(0),
        page_faults: field(&stat, "total_pgfault").unwrap_or(0),
        major_page_faults: field(&stat, "total_pgmajfault").unwrap_or(0),
    })
}

fn memory_v2(dir: &Path) -> Option<Memory> {
    let usage = read_u64(&dir.join("memory.current"))?;
    let stat = read_flat(&dir.join("memory.stat"));
    // "max" does not parse: no limit.
    let limit = read_u64(&dir.join("memory.max"));
    let working_set = working_set(usage, field(&stat, "inactive_file"));
    Some(Memory {
        usage,
        working_set,
        available: available(limit, working_set),
        rss: field(&stat, "anon").unwrap_or(0),
        page_faults: field(&stat, "pgfault").unwrap_or(0),
        major_page_faults: field(&stat, "pgmajfault").unwrap_or(0),
    })
}

fn working_set(usage: u64, inactive_file: Option<u64>) -> u64 {
    usage.saturating_sub(inactive_file.unwrap_or(0))
}

fn available(limit: Option<u64>, working_set: u64) -> u64 {
    match limit {
        Some(limit) if limit <= UNLIMITED => limit.saturating_sub(working_set),
        _ => 0,
    }
}

/// The cgroup's path below the hierarchy root. cgroupfs paths are that already; systemd's
/// `slice:prefix:name` is the slice expanded, with the scope `prefix-name.scope` below it (as
/// runc places it), and a bare slice (a pod's parent) is expanded alone.
pub(crate) fn fs_path(driver: CgroupDriver, cgroups_path: &str) -> Option<String> {
    if cgroups_path.is_empty() {
        return None;
    }
    match driver {
        CgroupDriver::Cgroupfs => Some(cgroups_path.to_string()),
        CgroupDriver::Systemd => match cgroups_path.split(':').collect::<Vec<_>>()[..] {
            [slice, prefix, name] => {
                let slice = if slice.is_empty() {
                    "system.slice"
                } else {
                    slice
                };
                Some(format!("{}/{prefix}-{name}.scope", expand_slice(slice)?))
            }
            [slice] if slice.ends_with(".slice") => expand_slice(slice),
            _ => Some(cgroups_path.to_string()),
        },
    }
}

/// `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice` (systemd's slice nesting); `-.slice` is the
/// root.
fn expand_slice(slice: &str) -> Option<String> {
    let name = slice.strip_suffix(".slice")?;
    if name == "-" {
        return Some("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if part.is_empty() {
            return None;
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Some(path)
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A flat keyed file (`name value` lines: memory.stat, cpu.stat); empty when missing.
fn read_flat(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests;
