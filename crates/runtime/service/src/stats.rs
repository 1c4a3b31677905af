//! Container and pod stats from the cgroup v1 files of the cgroupfs driver: CPU time from
//! cpuacct.usage, memory working set as usage minus inactive file pages (the kubelet's and
//! cAdvisor's definition), and the bytes and inodes of a container's writable layer.

use crate::filters::{Filter, Subject};
use crate::records::ContainerRecord;
use crate::{CgroupDriver, Inner, ServiceError, now_ns, sandbox};
use k8s_cri::v1::{
    ContainerAttributes, ContainerStats, ContainerStatsFilter, CpuUsage, FilesystemIdentifier,
    FilesystemUsage, LinuxPodSandboxStats, MemoryUsage, PodSandboxAttributes, PodSandboxStats,
    PodSandboxStatsFilter, UInt64Value,
};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn value(v: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value: v })
}

/// `/sys/fs/cgroup/CONTROLLER/PATH`, for cgroupfs paths only (a systemd slice path would need
/// the slice expanded first, which this runtime does not do yet for stats).
fn cgroup_dir(driver: CgroupDriver, controller: &str, path: &str) -> Option<PathBuf> {
    (driver == CgroupDriver::Cgroupfs && !path.is_empty()).then(|| {
        Path::new(CGROUP_ROOT)
            .join(controller)
            .join(path.trim_start_matches('/'))
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn cpu(driver: CgroupDriver, path: &str, timestamp: i64) -> Option<CpuUsage> {
    let usage = read_u64(&cgroup_dir(driver, "cpuacct", path)?.join("cpuacct.usage"))?;
    Some(CpuUsage {
        timestamp,
        usage_core_nano_seconds: value(usage),
        usage_nano_cores: None,
    })
}

fn memory(driver: CgroupDriver, path: &str, timestamp: i64) -> Option<MemoryUsage> {
    let dir = cgroup_dir(driver, "memory", path)?;
    let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let field = |name: &str| {
        stat.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(MemoryUsage {
        timestamp,
        working_set_bytes: value(working_set(usage, field("total_inactive_file"))),
        available_bytes: None,
        usage_bytes: value(usage),
        rss_bytes: field("total_rss").and_then(value),
        page_faults: field("total_pgfault").and_then(value),
        major_page_faults: field("total_pgmajfault").and_then(value),
    })
}

pub(crate) fn working_set(usage: u64, inactive_file: Option<u64>) -> u64 {
    usage.saturating_sub(inactive_file.unwrap_or(0))
}

/// Bytes and inodes below `dir`, not crossing into other file systems.
fn tree_usage(dir: &Path) -> (u64, u64) {
    let Ok(root) = std::fs::symlink_metadata(dir) else {
        return (0, 0);
    };
    let (mut bytes, mut inodes) = (0, 0);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != root.dev() {
                continue;
            }
            bytes += meta.blocks() * 512;
            inodes += 1;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    (bytes, inodes)
}

fn container_stats(inner: &Inner, r: &ContainerRecord) -> ContainerStats {
    let now = now_ns();
    let driver = inner.options.cgroup_driver;
    let upper = inner.layout.container_dir(&r.id).join("upper");
    let (bytes, inodes) = tree_usage(&upper);
    ContainerStats {
        attributes: Some(ContainerAttributes {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
        }),
        cpu: cpu(driver, &r.cgroups_path, now),
        memory: memory(driver, &r.cgroups_path, now),
        writable_layer: Some(FilesystemUsage {
            timestamp: now,
            fs_id: Some(FilesystemIdentifier {
                mountpoint: upper.to_string_lossy().into_owned(),
            }),
            used_bytes: value(bytes),
            inodes_used: value(inodes),
        }),
        swap: None,
    }
}

pub(crate) fn container(inner: &Inner, id: &str) -> Result<ContainerStats, ServiceError> {
    let record = inner.containers.find(id)?.get();
    Ok(container_stats(inner, &record))
}

pub(crate) fn containers(
    inner: &Inner,
    filter: Option<&ContainerStatsFilter>,
) -> Vec<ContainerStats> {
    let filter = Filter::from(filter);
    inner
        .containers
        .snapshot()
        .iter()
        .filter(|r| {
            filter.matches(&Subject {
                id: &r.id,
                state: 0,
                sandbox_id: &r.sandbox_id,
                labels: &r.config.labels,
            })
        })
        .map(|r| container_stats(inner, r))
        .collect()
}

pub(crate) fn pod(inner: &Inner, id: &str) -> Result<PodSandboxStats, ServiceError> {
    let record = inner.sandboxes.find(id)?.get();
    Ok(pod_stats(inner, &record))
}

pub(crate) fn pods(inner: &Inner, filter: Option<&PodSandboxStatsFilter>) -> Vec<PodSandboxStats> {
    let filter = Filter::from(filter);
    inner
        .sandboxes
        .snapshot()
        .iter()
        .filter(|r| {
            filter.matches(&Subject {
                id: &r.id,
                state: 0,
                sandbox_id: "",
                labels: &r.config.labels,
            })
        })
        .map(|r| pod_stats(inner, r))
        .collect()
}

/// The pod's cgroup parent holds all its containers (and their monitors' cgroups).
fn pod_stats(inner: &Inner, r: &crate::records::SandboxRecord) -> PodSandboxStats {
    let now = now_ns();
    let driver = inner.options.cgroup_driver;
    let parent = sandbox::cgroup_parent(&r.config);
    PodSandboxStats {
        attributes: Some(PodSandboxAttributes {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
        }),
        linux: Some(LinuxPodSandboxStats {
            cpu: cpu(driver, parent, now),
            memory: memory(driver, parent, now),
            network: None,
            process: None,
            containers: crate::container::of_sandbox(inner, &r.id)
                .iter()
                .map(|c| container_stats(inner, &c.get()))
                .collect(),
        }),
        windows: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_set_is_usage_minus_inactive_file() {
        assert_eq!(working_set(100, Some(30)), 70);
        assert_eq!(working_set(100, None), 100);
        assert_eq!(working_set(10, Some(30)), 0);
    }

    #[test]
    fn writable_layer_usage_counts_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), vec![1u8; 10_000]).unwrap();
        let (bytes, inodes) = tree_usage(dir.path());
        assert_eq!(inodes, 2);
        assert!(bytes >= 10_000, "{bytes}");
        assert_eq!(tree_usage(&dir.path().join("missing")), (0, 0));
    }
}
