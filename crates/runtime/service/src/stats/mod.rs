//! ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats as containerd
//! answers them: CPU (cumulative, and nano-cores against the previous sample), memory (usage,
//! working set, available, RSS, page faults) and processes from the cgroup files, v1 or v2
//! ([`cgroup`]); a container's writable layer in bytes and inodes; a pod's network counters from
//! inside its network namespace ([`net`]).

mod cgroup;
mod cpu;
mod net;

use crate::filters::{Filter, Subject};
use crate::records::{ContainerRecord, SandboxPhase, SandboxRecord};
use crate::{CgroupDriver, Inner, ServiceError, now_ns, sandbox};
use k8s_cri::v1::{
    ContainerAttributes, ContainerStats, ContainerStatsFilter, CpuUsage, FilesystemIdentifier,
    FilesystemUsage, LinuxPodSandboxStats, MemoryUsage, PodSandboxAttributes, PodSandboxStats,
    PodSandboxStatsFilter, ProcessUsage, UInt64Value,
};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// What stats keep between calls: where the cgroups are, and the last CPU samples.
#[derive(Debug)]
pub(crate) struct Stats {
    cgroups: cgroup::Cgroups,
    cpu: cpu::CpuSamples,
}

impl Stats {
    pub(crate) fn new(driver: CgroupDriver) -> Stats {
        Stats {
            cgroups: cgroup::Cgroups::new(Path::new(CGROUP_ROOT), driver),
            cpu: cpu::CpuSamples::default(),
        }
    }

    /// CPU, memory and process count of the cgroup `cgroups_path`, sampled for `id`.
    fn sample(
        &self,
        id: &str,
        cgroups_path: &str,
    ) -> (Option<CpuUsage>, Option<MemoryUsage>, Option<u64>) {
        let sample = self.cgroups.sample(cgroups_path);
        let timestamp = now_ns();
        let cpu = sample.cpu_usage_ns.map(|usage| CpuUsage {
            timestamp,
            usage_core_nano_seconds: value(usage),
            usage_nano_cores: value(self.cpu.nano_cores(id, usage, timestamp)),
        });
        let memory = sample.memory.map(|m| MemoryUsage {
            timestamp,
            working_set_bytes: value(m.working_set),
            available_bytes: value(m.available),
            usage_bytes: value(m.usage),
            rss_bytes: value(m.rss),
            page_faults: value(m.page_faults),
            major_page_faults: value(m.major_page_faults),
        });
        (cpu, memory, sample.pids)
    }
}

fn value(v: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value: v })
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
    let (cpu, memory, _) = inner.stats.sample(&r.id, &r.cgroups_path);
    let upper = inner.layout.container_dir(&r.id).join("upper");
    let (bytes, inodes) = tree_usage(&upper);
    ContainerStats {
        attributes: Some(ContainerAttributes {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
        }),
        cpu,
        memory,
        writable_layer: Some(FilesystemUsage {
            timestamp: now_ns(),
            fs_id: Some(FilesystemIdentifier {
                mountpoint: upper.to_string_lossy().into_owned(),
            }),
            used_bytes: value(bytes),
            inodes_used: value(inodes),
        }),
        swap: None,
    }
}

/// Forgets the CPU samples of containers and sandboxes that are gone.
fn prune(inner: &Inner) {
    let live: HashSet<String> = inner
        .containers
        .snapshot()
        .into_iter()
        .map(|r| r.id)
        .chain(inner.sandboxes.snapshot().into_iter().map(|r| r.id))
        .collect();
    inner.stats.cpu.retain(|id| live.contains(id));
}

pub(crate) fn container(inner: &Inner, id: &str) -> Result<ContainerStats, ServiceError> {
    let record = inner.containers.find(id)?.get();
    Ok(container_stats(inner, &record))
}

pub(crate) fn containers(
    inner: &Inner,
    filter: Option<&ContainerStatsFilter>,
) -> Vec<ContainerStats> {
    prune(inner);
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
    prune(inner);
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
fn pod_stats(inner: &Inner, r: &SandboxRecord) -> PodSandboxStats {
    let (cpu, memory, pids) = inner.stats.sample(&r.id, sandbox::cgroup_parent(&r.config));
    let timestamp = now_ns();
    // Host-network pods have no namespace of their own; a stopped pod's is unpinned.
    let network = match (&r.namespaces.net, r.phase) {
        (Some(netns), SandboxPhase::Ready) => net::usage(netns, timestamp)
            .inspect_err(|err| {
                tracing::debug!(sandbox_id = %r.id, error = %err, "no network stats");
            })
            .ok(),
        _ => None,
    };
    PodSandboxStats {
        attributes: Some(PodSandboxAttributes {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
        }),
        linux: Some(LinuxPodSandboxStats {
            cpu,
            memory,
            network,
            process: pids.map(|count| ProcessUsage {
                timestamp,
                process_count: value(count),
            }),
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
