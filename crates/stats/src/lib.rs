//! The kubelet's observability data: its own Prometheus metrics (/metrics), the stats Summary
//! (/stats/summary) and the metrics derived from it (/metrics/resource, /metrics/cadvisor).
//!
//! # Where each figure comes from
//!
//! The same on every runtime (containerd, CRI-O, the built-in one), so a pod shows the same
//! figures whichever runs it:
//!
//! | figure | path |
//! | --- | --- |
//! | node CPU, memory, network, rlimit, fs | the kubelet's own readers ([`host`]): the root cgroup, /proc, statfs of the root dir |
//! | node imageFs | CRI ImageFsInfo (bytes and inodes used), statfs of its mountpoint for the rest |
//! | container CPU (cumulative and nano-cores), memory (usage, working set, available, RSS, page faults), rootfs | CRI ListContainerStats; the runtime's nano-cores win over the kubelet's own rate, which fills in when a runtime sends none |
//! | container logs | the kubelet's disk usage of the pod's log dir |
//! | pod CPU and memory | the sum of its containers' CRI figures (not the pod cgroup, not PodSandboxStats) |
//! | pod network | /proc/PID/net/dev of the first process of the sandbox's cgroup (containerd's pause), else of a running container's (the built-in runtime runs no sandbox process unless the PID namespace is shared) |
//! | pod volumes (other than CSI), ephemeral storage | the kubelet's disk usage of the pod's volume dirs, plus the containers' rootfs and logs |
//! | pod CSI volumes, kubelet_volume_stats_* | the driver's NodeGetVolumeStats (drivers with GET_VOLUME_STATS), asked in the background every volumeStatsAggPeriod ([`VolumeStatsCache`]) |
//! | /metrics/resource | derived from the Summary above |
//! | /metrics/cadvisor | CRI ListContainerStats |
//!
//! The built-in runtime reads its CRI figures from the cgroup files the way containerd does
//! (working set = usage − inactive file; nano-cores against the previous sample; v1 or v2), so
//! the memory counters are the same numbers and CPU differs only by when each was sampled. Its
//! PodSandboxStats (pod cgroup, netns counters, pids) serve crictl and other CRI clients; the
//! summary does not use them.

mod cadvisor;
pub mod error;
pub mod exposition;
pub mod host;
pub mod kubelet_metrics;
mod process;
pub mod provider;
mod resource_metrics;
pub mod types;
pub mod volume_stats;

pub use error::StatsError;
pub use kubelet_metrics::{BuildInfo, KubeletMetrics};
pub use provider::{StatsConfig, StatsProvider};
pub use resource_metrics::resource_metrics;
pub use types::Summary;
pub use volume_stats::VolumeStatsCache;

#[cfg(test)]
mod tests;
