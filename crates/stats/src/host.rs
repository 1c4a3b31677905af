//! The node's own figures: the root cgroup (v1 cpuacct and memory, or the v2 unified root),
//! /proc and statvfs.

use crate::error::StatsError;
use crate::types::{FsStats, InterfaceStats, Timestamp};
use std::collections::HashMap;
use std::path::Path;

fn read(path: &Path) -> Result<String, StatsError> {
    std::fs::read_to_string(path).map_err(|source| StatsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, StatsError> {
    text.trim().parse().map_err(|_| StatsError::Parse {
        path: path.display().to_string(),
        reason: format!("{:?} is not a number", text.trim()),
    })
}

/// `key value` lines, as in memory.stat and /proc/meminfo (whose values end in " kB").
fn key_values(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let key = fields.next()?.trim_end_matches(':');
            let value: u64 = fields.next()?.parse().ok()?;
            let scale = if fields.next() == Some("kB") { 1024 } else { 1 };
            Some((key, value * scale))
        })
        .collect()
}

/// Whether `cgroup_mount` is the cgroup v2 unified hierarchy (its root lists its controllers);
/// on v1 and hybrid hosts it holds one directory per hierarchy.
pub fn is_unified(cgroup_mount: &Path) -> bool {
    cgroup_mount.join("cgroup.controllers").is_file()
}

/// Cumulative CPU time of everything on the node: the root cpuacct cgroup on v1, the root's
/// cpu.stat usage_usec on v2 (`unified`, as [`is_unified`] tells it).
pub fn cpu_usage_nanos(cgroup_mount: &Path, unified: bool) -> Result<u64, StatsError> {
    if unified {
        let path = cgroup_mount.join("cpu.stat");
        let text = read(&path)?;
        let usec = key_values(&text)
            .get("usage_usec")
            .copied()
            .ok_or_else(|| StatsError::Parse {
                path: path.display().to_string(),
                reason: "no usage_usec".to_string(),
            })?;
        return Ok(usec * 1000);
    }
    let path = cgroup_mount.join("cpuacct/cpuacct.usage");
    parse_u64(&path, &read(&path)?)
}

/// The root memory cgroup's figures; working set is usage minus inactive file cache, as
/// cAdvisor computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeMemory {
    pub total_bytes: u64,
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    pub rss_bytes: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
}

/// On v2 the root cgroup has no memory.current: usage is MemTotal - MemFree, as runc's
/// root statistics take it, and memory.stat names its figures without v1's `total_` prefix.
pub fn memory(
    cgroup_mount: &Path,
    unified: bool,
    proc_root: &Path,
) -> Result<NodeMemory, StatsError> {
    let meminfo_path = proc_root.join("meminfo");
    let meminfo_text = read(&meminfo_path)?;
    let meminfo = key_values(&meminfo_text);
    let meminfo_of = |key: &str| {
        meminfo.get(key).copied().ok_or_else(|| StatsError::Parse {
            path: meminfo_path.display().to_string(),
            reason: format!("no {key}"),
        })
    };
    let total_bytes = meminfo_of("MemTotal")?;
    let (usage_bytes, stat_path, prefix, rss) = if unified {
        let usage = total_bytes.saturating_sub(meminfo_of("MemFree")?);
        (usage, cgroup_mount.join("memory.stat"), "", "anon")
    } else {
        let usage_path = cgroup_mount.join("memory/memory.usage_in_bytes");
        let usage = parse_u64(&usage_path, &read(&usage_path)?)?;
        (
            usage,
            cgroup_mount.join("memory/memory.stat"),
            "total_",
            "total_rss",
        )
    };
    let stat_text = read(&stat_path)?;
    let stat = key_values(&stat_text);
    let stat_of = |key: &str| {
        stat.get(format!("{prefix}{key}").as_str())
            .copied()
            .unwrap_or(0)
    };
    Ok(NodeMemory {
        total_bytes,
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(stat_of("inactive_file")),
        rss_bytes: stat.get(rss).copied().unwrap_or(0),
        page_faults: stat_of("pgfault"),
        major_page_faults: stat_of("pgmajfault"),
    })
}

/// Boot time, from the `btime` line of /proc/stat: the node's start time in the summary.
pub fn boot_time(proc_root: &Path) -> Result<Timestamp, StatsError> {
    let path = proc_root.join("stat");
    let text = read(&path)?;
    let seconds = text
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .ok_or_else(|| StatsError::Parse {
            path: path.display().to_string(),
            reason: "no btime line".to_string(),
        })?;
    let seconds = parse_u64(&path, seconds)?;
    Ok(Timestamp(seconds as i64 * 1_000_000_000))
}

/// The process limit (kernel.pid_max) and the number of processes (the total of the
/// "running/total" field of /proc/loadavg), as upstream's rlimit stats.
pub fn process_counts(proc_root: &Path) -> Result<(i64, i64), StatsError> {
    let pid_max_path = proc_root.join("sys/kernel/pid_max");
    let max = parse_u64(&pid_max_path, &read(&pid_max_path)?)?;
    let loadavg_path = proc_root.join("loadavg");
    let loadavg = read(&loadavg_path)?;
    let total = loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|field| field.split_once('/'))
        .map(|(_, total)| total)
        .ok_or_else(|| StatsError::Parse {
            path: loadavg_path.display().to_string(),
            reason: "no running/total field".to_string(),
        })?;
    let total = parse_u64(&loadavg_path, total)?;
    Ok((max as i64, total as i64))
}

/// Interfaces of a /proc/<pid>/net/dev table, loopback left out.
pub fn interfaces(net_dev: &Path) -> Result<Vec<InterfaceStats>, StatsError> {
    let text = read(net_dev)?;
    // Two header lines, then "name: rx_bytes rx_packets rx_errs ... (8 rx) tx_bytes ...".
    Ok(text
        .lines()
        .skip(2)
        .filter_map(|line| {
            let (name, figures) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let figures: Vec<u64> = figures
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            (figures.len() >= 11).then(|| InterfaceStats {
                name: name.to_string(),
                rx_bytes: figures[0],
                rx_errors: figures[2],
                tx_bytes: figures[8],
                tx_errors: figures[10],
            })
        })
        .collect())
}

/// Capacity, availability and inodes of the filesystem holding `path`.
pub fn filesystem(path: &Path, time: Timestamp) -> Result<FsStats, StatsError> {
    let vfs = nix::sys::statvfs::statvfs(path).map_err(|source| StatsError::Statvfs {
        path: path.display().to_string(),
        source,
    })?;
    let block = vfs.fragment_size();
    let blocks = vfs.blocks();
    Ok(FsStats {
        time,
        available_bytes: Some(vfs.blocks_available() * block),
        capacity_bytes: Some(blocks * block),
        used_bytes: Some(blocks.saturating_sub(vfs.blocks_free()) * block),
        inodes_free: Some(vfs.files_free()),
        inodes: Some(vfs.files()),
        inodes_used: Some(vfs.files().saturating_sub(vfs.files_free())),
    })
}

/// Bytes and inodes used under `dir` (as `du`: allocated blocks), or `None` if it is absent.
pub fn disk_usage(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).ok()?;
    let mut bytes = meta.blocks() * 512;
    let mut inodes = 1;
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            if let Some((b, i)) = disk_usage(&entry.path()) {
                bytes += b;
                inodes += i;
            }
        }
    }
    Some((bytes, inodes))
}
