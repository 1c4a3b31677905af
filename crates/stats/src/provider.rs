//! Builds the Summary from the runtime's container stats and the node's own figures, and keeps
//! the previous cumulative CPU of each node, pod and container to turn it into a rate.

use crate::error::StatsError;
use crate::host;
use crate::types::{
    ContainerStats, CpuStats, FsStats, InterfaceStats, MemoryStats, NetworkStats, NodeStats,
    PodReference, PodStats, RlimitStats, RuntimeStats, Summary, Timestamp, VolumeStats,
};
use crate::volume_stats::VolumeStatsCache;
use k8s_openapi::api::core::v1::Pod;
use kubelet_cri::Runtime;
use kubelet_cri::api::{self, ContainerState, PodSandboxState};
use kubelet_kuberuntime::qos::CgroupDriver;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where the node's figures come from. Every path is a setting so tests can point elsewhere.
#[derive(Debug, Clone)]
pub struct StatsConfig {
    /// The cgroup mount (/sys/fs/cgroup): v1's `cpuacct` and `memory` hierarchies, or v2's
    /// unified one.
    pub cgroup_mount: PathBuf,
    /// The kubelet's --cgroup-root and --cgroups-per-qos, which place the pods' cgroups.
    pub pod_cgroup_root: String,
    pub cgroups_per_qos: bool,
    /// The kubelet's --cgroup-driver, which names those cgroups.
    pub cgroup_driver: CgroupDriver,
    pub proc_root: PathBuf,
    /// The kubelet's root dir: its filesystem is the node's `fs`, and pods' volumes live under
    /// `pods/<uid>/volumes`.
    pub root_dir: PathBuf,
    /// Pod logs live in `<pod_logs_dir>/<namespace>_<name>_<uid>/<container>/`.
    pub pod_logs_dir: PathBuf,
    /// Take the image filesystem from CRI ImageFsInfo rather than the root filesystem.
    pub image_fs_from_cri: bool,
}

#[derive(Debug, Clone, Copy)]
struct CpuSample {
    time: Timestamp,
    usage_nanos: u64,
}

#[derive(Debug)]
pub struct StatsProvider {
    config: StatsConfig,
    /// cgroup v2: every controller in the one hierarchy at `cgroup_mount`.
    unified: bool,
    previous: Mutex<HashMap<String, CpuSample>>,
    /// The figures volume drivers reported, computed in the background.
    driver_volumes: VolumeStatsCache,
}

/// The CSI plugin's dir in a pod's volumes dir: its volumes' figures are the driver's, never
/// the kubelet's own disk usage of the mount.
const CSI_VOLUME_PLUGIN_DIR: &str = "kubernetes.io~csi";

/// Nanocores between two `(time ns, cumulative cpu ns)` samples; `None` when no time passed
/// or the counter went back (the container was replaced).
pub(crate) fn nano_cores_between(earlier: (i64, u64), later: (i64, u64)) -> Option<u64> {
    let elapsed = later.0.checked_sub(earlier.0).filter(|e| *e > 0)?;
    let used = later.1.checked_sub(earlier.1)?;
    Some((u128::from(used) * 1_000_000_000 / elapsed as u128) as u64)
}

fn nano_cores(earlier: Option<&CpuSample>, now: CpuSample) -> Option<u64> {
    let earlier = earlier?;
    nano_cores_between(
        (earlier.time.0, earlier.usage_nanos),
        (now.time.0, now.usage_nanos),
    )
}

fn value(v: &Option<api::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

fn sum(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.fold(None, |total, v| match (total, v) {
        (None, v) => v,
        (Some(t), v) => Some(t + v.unwrap_or(0)),
    })
}

fn readable<T>(what: &str, result: Result<T, StatsError>) -> Option<T> {
    result
        .map_err(|error| tracing::warn!(%error, "summary without the {what}"))
        .ok()
}

fn is_disk_empty_dir(pod: &Pod, volume: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .filter(|v| v.name == volume)
        .filter_map(|v| v.empty_dir.as_ref())
        .any(|empty_dir| empty_dir.medium.as_deref() != Some("Memory"))
}

/// Network stats with upstream's default interface, eth0, or else the first one.
fn network(interfaces: Vec<InterfaceStats>, now: Timestamp) -> Option<NetworkStats> {
    let default_interface = interfaces
        .iter()
        .find(|i| i.name == "eth0")
        .or(interfaces.first())
        .cloned()?;
    Some(NetworkStats {
        time: now,
        default_interface,
        interfaces,
    })
}

/// One round of rates: the new samples replace the old ones at the end, so series of
/// containers that went away are forgotten.
struct Rates<'a> {
    previous: &'a HashMap<String, CpuSample>,
    current: HashMap<String, CpuSample>,
}

/// What every part of one summary shares.
struct Round<'a> {
    now: Timestamp,
    root_fs: FsStats,
    image_fs: FsStats,
    rates: Rates<'a>,
}

impl Rates<'_> {
    fn cpu(&mut self, key: String, time: Timestamp, usage_nanos: Option<u64>) -> CpuStats {
        let usage_nano_cores = usage_nanos.and_then(|usage_nanos| {
            let sample = CpuSample { time, usage_nanos };
            let rate = nano_cores(self.previous.get(&key), sample);
            self.current.insert(key, sample);
            rate
        });
        CpuStats {
            time,
            usage_nano_cores,
            usage_core_nano_seconds: usage_nanos,
        }
    }
}

impl StatsProvider {
    pub fn new(config: StatsConfig) -> Self {
        StatsProvider {
            unified: host::is_unified(&config.cgroup_mount),
            config,
            previous: Mutex::new(HashMap::new()),
            driver_volumes: VolumeStatsCache::default(),
        }
    }

    /// Lists the volume figures in `cache` with each pod's own.
    pub fn with_driver_volumes(mut self, cache: VolumeStatsCache) -> Self {
        self.driver_volumes = cache;
        self
    }

    /// The cgroup (path inside a hierarchy) of one of the pod's containers or its sandbox: below
    /// the pod's cgroup, `<id>` with the cgroupfs driver; with systemd, the scope the runtime
    /// named after the id (cri-containerd-<id>.scope, crio-<id>.scope, kubelet-rs-<id>.scope).
    pub(crate) fn container_cgroup(&self, pod: &Pod, container_id: &str) -> String {
        let driver = self.config.cgroup_driver;
        let parent = driver.path(&kubelet_kuberuntime::qos::pod_cgroup_parent(
            pod,
            &self.config.pod_cgroup_root,
            self.config.cgroups_per_qos,
        ));
        let parent = parent.trim_end_matches('/');
        let scope = match driver {
            CgroupDriver::Cgroupfs => None,
            CgroupDriver::Systemd => self.scope_of(parent, container_id),
        };
        format!("{parent}/{}", scope.as_deref().unwrap_or(container_id))
    }

    /// The runtime's systemd scope of a container in the pod's slice, named after its id.
    fn scope_of(&self, pod_cgroup: &str, container_id: &str) -> Option<String> {
        let suffix = format!("-{container_id}.scope");
        std::fs::read_dir(self.cgroup_file("memory", pod_cgroup, ""))
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|name| name.ends_with(&suffix))
    }

    /// A file of a container's cgroup in the v1 `hierarchy` (memory, cpuacct, ...), or in the
    /// unified hierarchy on v2.
    pub(crate) fn cgroup_file(&self, hierarchy: &str, cgroup: &str, file: &str) -> PathBuf {
        let mount = &self.config.cgroup_mount;
        let root = if self.unified {
            mount.clone()
        } else {
            mount.join(hierarchy)
        };
        root.join(cgroup.trim_start_matches('/')).join(file)
    }

    /// The memory limit of a cgroup in bytes; none when unlimited or unreadable.
    pub(crate) fn memory_limit(&self, cgroup: &str) -> Option<u64> {
        let file = if self.unified {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        let text = std::fs::read_to_string(self.cgroup_file("memory", cgroup, file)).ok()?;
        text.trim().parse().ok()
    }

    /// The pod's network figures, from /proc/<pid>/net/dev of a process in the pod's network
    /// namespace: the first of its sandbox (containerd's pause), else of one of `containers`
    /// (the built-in runtime pins the namespace with no process of its own).
    fn pod_network<'a>(
        &self,
        pod: &Pod,
        sandbox_id: &'a str,
        containers: impl IntoIterator<Item = &'a str>,
        now: Timestamp,
    ) -> Option<NetworkStats> {
        let pid = std::iter::once(sandbox_id)
            .chain(containers)
            .find_map(|id| {
                let cgroup = self.container_cgroup(pod, id);
                let procs = self.cgroup_file("memory", &cgroup, "cgroup.procs");
                let procs = std::fs::read_to_string(procs).ok()?;
                procs.lines().next()?.trim().parse::<u32>().ok()
            })?;
        let net_dev = self.config.proc_root.join(pid.to_string()).join("net/dev");
        let interfaces = host::interfaces(&net_dev).ok()?;
        network(interfaces, now)
    }

    /// The /stats/summary answer. The first call has no `usageNanoCores` (there is nothing to
    /// compare with yet) unless the runtime reports it itself.
    pub async fn summary(
        &self,
        runtime: &dyn Runtime,
        node_name: &str,
        pods: &[Pod],
    ) -> Result<Summary, StatsError> {
        let now = Timestamp::now();
        let sandboxes = runtime.list_pod_sandbox(None).await?;
        let containers = runtime.list_containers(None).await?;
        let container_stats = runtime.list_container_stats(None).await?;
        let root_fs = host::filesystem(&self.config.root_dir, now)?;
        let image_fs = self.image_fs(runtime, &root_fs, now).await?;

        let previous = self
            .previous
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut round = Round {
            now,
            root_fs,
            image_fs,
            rates: Rates {
                previous: &previous,
                current: HashMap::new(),
            },
        };
        let node = self.node_stats(&mut round, node_name);

        let running: HashMap<&str, &api::Container> = containers
            .iter()
            .filter(|c| c.state == ContainerState::ContainerRunning as i32)
            .map(|c| (c.id.as_str(), c))
            .collect();
        let mut pod_stats = Vec::new();
        for sandbox in sandboxes
            .iter()
            .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
        {
            let Some(meta) = &sandbox.metadata else {
                continue;
            };
            let stats: Vec<(&api::Container, &api::ContainerStats)> = container_stats
                .iter()
                .filter_map(|s| {
                    let id = s.attributes.as_ref()?.id.as_str();
                    let container = running.get(id)?;
                    (container.pod_sandbox_id == sandbox.id).then_some((*container, s))
                })
                .collect();
            let spec = pods
                .iter()
                .find(|p| p.metadata.uid.as_deref() == Some(meta.uid.as_str()));
            pod_stats.push(self.pod_stats(&mut round, sandbox, meta, &stats, spec));
        }
        let current = round.rates.current;
        *self
            .previous
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = current;
        Ok(Summary {
            node,
            pods: pod_stats,
        })
    }

    async fn image_fs(
        &self,
        runtime: &dyn Runtime,
        root_fs: &FsStats,
        now: Timestamp,
    ) -> Result<FsStats, StatsError> {
        if !self.config.image_fs_from_cri {
            return Ok(root_fs.clone());
        }
        let usage = runtime.image_fs_info().await?;
        let Some(first) = usage.first() else {
            return Ok(root_fs.clone());
        };
        // The runtime knows what its images use; the filesystem under them gives the rest.
        let mountpoint = first.fs_id.as_ref().map(|id| id.mountpoint.as_str());
        let mut fs = match mountpoint.map(|m| host::filesystem(std::path::Path::new(m), now)) {
            Some(Ok(fs)) => fs,
            _ => root_fs.clone(),
        };
        fs.used_bytes = value(&first.used_bytes).or(fs.used_bytes);
        fs.inodes_used = value(&first.inodes_used).or(fs.inodes_used);
        Ok(fs)
    }

    /// The node's figures; one that cannot be read is left out (and logged) rather than
    /// failing the whole summary, so pods' stats still reach metrics-server.
    fn node_stats(&self, round: &mut Round<'_>, node_name: &str) -> NodeStats {
        let config = &self.config;
        let now = round.now;
        let cpu_nanos = readable(
            "node cpu",
            host::cpu_usage_nanos(&config.cgroup_mount, self.unified),
        );
        let memory = readable(
            "node memory",
            host::memory(&config.cgroup_mount, self.unified, &config.proc_root),
        );
        let processes = readable("node processes", host::process_counts(&config.proc_root));
        let interfaces = readable(
            "node network",
            host::interfaces(&config.proc_root.join("net/dev")),
        );
        NodeStats {
            node_name: node_name.to_string(),
            start_time: readable("boot time", host::boot_time(&config.proc_root))
                .unwrap_or_default(),
            cpu: cpu_nanos.map(|nanos| round.rates.cpu("node".to_string(), now, Some(nanos))),
            memory: memory.map(|memory| MemoryStats {
                time: now,
                available_bytes: Some(memory.total_bytes.saturating_sub(memory.working_set_bytes)),
                usage_bytes: Some(memory.usage_bytes),
                working_set_bytes: Some(memory.working_set_bytes),
                rss_bytes: Some(memory.rss_bytes),
                page_faults: Some(memory.page_faults),
                major_page_faults: Some(memory.major_page_faults),
            }),
            network: interfaces.and_then(|interfaces| network(interfaces, now)),
            fs: Some(round.root_fs.clone()),
            runtime: Some(RuntimeStats {
                image_fs: Some(round.image_fs.clone()),
                container_fs: Some(round.image_fs.clone()),
            }),
            rlimit: processes.map(|(maxpid, curproc)| RlimitStats {
                time: now,
                maxpid: Some(maxpid),
                curproc: Some(curproc),
            }),
        }
    }

    fn pod_stats(
        &self,
        round: &mut Round<'_>,
        sandbox: &api::PodSandbox,
        meta: &api::PodSandboxMetadata,
        stats: &[(&api::Container, &api::ContainerStats)],
        spec: Option<&Pod>,
    ) -> PodStats {
        let now = round.now;
        let pod_ref = PodReference {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
        };
        let network = spec.and_then(|pod| {
            let containers = stats.iter().map(|(c, _)| c.id.as_str());
            self.pod_network(pod, &sandbox.id, containers, now)
        });
        let log_dir = self.config.pod_logs_dir.join(format!(
            "{}_{}_{}",
            pod_ref.namespace, pod_ref.name, pod_ref.uid
        ));
        let containers: Vec<ContainerStats> = stats
            .iter()
            .map(|(container, s)| {
                let name = container
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                let logs = host::disk_usage(&log_dir.join(&name)).map(|(bytes, inodes)| FsStats {
                    used_bytes: Some(bytes),
                    inodes_used: Some(inodes),
                    ..round.root_fs.clone()
                });
                ContainerStats {
                    start_time: Timestamp(container.created_at),
                    cpu: s.cpu.as_ref().map(|cpu| {
                        let mut stats = round.rates.cpu(
                            format!("container/{}", container.id),
                            Timestamp(cpu.timestamp),
                            value(&cpu.usage_core_nano_seconds),
                        );
                        // The runtime's own rate wins: it sampled more closely than we do.
                        stats.usage_nano_cores =
                            value(&cpu.usage_nano_cores).or(stats.usage_nano_cores);
                        stats
                    }),
                    memory: s.memory.as_ref().map(|m| MemoryStats {
                        time: Timestamp(m.timestamp),
                        available_bytes: value(&m.available_bytes),
                        usage_bytes: value(&m.usage_bytes),
                        working_set_bytes: value(&m.working_set_bytes),
                        rss_bytes: value(&m.rss_bytes),
                        page_faults: value(&m.page_faults),
                        major_page_faults: value(&m.major_page_faults),
                    }),
                    rootfs: s.writable_layer.as_ref().map(|layer| FsStats {
                        time: Timestamp(layer.timestamp),
                        used_bytes: value(&layer.used_bytes),
                        inodes_used: value(&layer.inodes_used),
                        ..round.image_fs.clone()
                    }),
                    logs,
                    name,
                }
            })
            .collect();

        let pod_cpu = sum(containers
            .iter()
            .map(|c| c.cpu.as_ref()?.usage_core_nano_seconds));
        // The pod's sample is as recent as its containers' latest, so its rate compares like
        // with like across scrapes.
        let pod_cpu_time = containers
            .iter()
            .filter_map(|c| Some(c.cpu.as_ref()?.time))
            .max();
        let cpu = pod_cpu_time.map(|time| {
            round
                .rates
                .cpu(format!("pod/{}", pod_ref.uid), time, pod_cpu)
        });
        let memory_of = |field: fn(&MemoryStats) -> Option<u64>| {
            sum(containers.iter().map(|c| c.memory.as_ref().and_then(field)))
        };
        let memory = (!containers.is_empty()).then(|| MemoryStats {
            time: now,
            available_bytes: None,
            usage_bytes: memory_of(|m| m.usage_bytes),
            working_set_bytes: memory_of(|m| m.working_set_bytes),
            rss_bytes: memory_of(|m| m.rss_bytes),
            page_faults: memory_of(|m| m.page_faults),
            major_page_faults: memory_of(|m| m.major_page_faults),
        });
        let mut volume = spec
            .map(|pod| self.volume_stats(pod, &pod_ref.uid, now))
            .unwrap_or_default();
        volume.extend(self.driver_volumes.pod(&pod_ref.uid));
        // Ephemeral storage: the containers' writable layers and logs, and the emptyDir
        // volumes on disk (a memory-backed one is RAM, not storage).
        let on_disk_empty_dirs: Vec<&VolumeStats> = volume
            .iter()
            .filter(|v| spec.is_some_and(|pod| is_disk_empty_dir(pod, &v.name)))
            .collect();
        let ephemeral = || {
            containers
                .iter()
                .flat_map(|c| [c.rootfs.as_ref(), c.logs.as_ref()])
                .chain(on_disk_empty_dirs.iter().map(|v| Some(&v.fs)))
        };
        let ephemeral_used = sum(ephemeral().map(|fs| fs.and_then(|fs| fs.used_bytes)));
        let ephemeral_inodes = sum(ephemeral().map(|fs| fs.and_then(|fs| fs.inodes_used)));
        PodStats {
            pod_ref,
            start_time: Timestamp(sandbox.created_at),
            containers,
            cpu,
            memory,
            network,
            volume,
            ephemeral_storage: Some(FsStats {
                used_bytes: ephemeral_used.or(Some(0)),
                inodes_used: ephemeral_inodes.or(Some(0)),
                ..round.root_fs.clone()
            }),
        }
    }

    /// Each of the pod's volumes that has a directory under the kubelet's pod dir
    /// (`pods/<uid>/volumes/<plugin>/<name>`): its filesystem's figures and what it uses.
    fn volume_stats(&self, pod: &Pod, uid: &str, now: Timestamp) -> Vec<VolumeStats> {
        let volumes_dir = self.config.root_dir.join("pods").join(uid).join("volumes");
        let Ok(plugins) = std::fs::read_dir(&volumes_dir) else {
            return Vec::new();
        };
        let plugin_dirs: Vec<PathBuf> = plugins
            .flatten()
            .filter(|e| e.file_name() != CSI_VOLUME_PLUGIN_DIR)
            .map(|e| e.path())
            .collect();
        let names = pod
            .spec
            .iter()
            .flat_map(|spec| spec.volumes.iter().flatten())
            .map(|v| v.name.as_str());
        names
            .filter_map(|name| {
                let dir = plugin_dirs
                    .iter()
                    .map(|p| p.join(name))
                    .find(|d| d.is_dir())?;
                let mut fs = host::filesystem(&dir, now).ok()?;
                let (used, inodes) = host::disk_usage(&dir)?;
                fs.used_bytes = Some(used);
                fs.inodes_used = Some(inodes);
                Some(VolumeStats {
                    fs,
                    name: name.to_string(),
                    pvc_ref: None,
                    volume_health_stats: None,
                })
            })
            .collect()
    }
}
