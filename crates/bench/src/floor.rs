//! The runtime's floor: the bench itself creates the pods a kubelet would, through CRI, with the
//! kubelet's own config builders (same sandbox and container configs, labels, cgroup parents)
//! and the same concurrency (one task per pod, like one pod worker per pod). What a kubelet
//! takes beyond this is its overhead.
//!
//! Per pod it makes the calls a kubelet cannot do without: RunPodSandbox, PodSandboxStatus (the
//! pod IP for /etc/hosts), ImageStatus (the IfNotPresent check), CreateContainer,
//! StartContainer; and StopPodSandbox plus RemovePodSandbox to remove it. Each call's duration
//! is recorded, so a run says which of them the time goes to.

use crate::error::{BenchError, Result};
use crate::pods::BenchPod;
use crate::runtime_env::BUSYBOX;
use k8s_openapi::api::core::v1::Pod;
use kubelet_cri::api::ImageSpec;
use kubelet_cri::remote::RemoteRuntime;
use kubelet_cri::{ImageService, RuntimeService};
use kubelet_kuberuntime::container_config::{ContainerInput, container_config};
use kubelet_kuberuntime::dns::DnsOptions;
use kubelet_kuberuntime::sandbox_config::{SandboxOptions, pod_sandbox_config};
use procfs::Current;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::{JoinError, JoinSet};

/// The floor's CRI calls, in the order a pod meets them: the table's rows.
pub const CALLS: [&str; 7] = [
    "RunPodSandbox",
    "PodSandboxStatus",
    "ImageStatus",
    "CreateContainer",
    "StartContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
];

/// Each CRI call's durations (ms), by call name.
#[derive(Clone, Default)]
struct CallTimes(Arc<Mutex<BTreeMap<String, Vec<f64>>>>);

impl CallTimes {
    /// Awaits `call`, recording its duration under `name` (failed calls too: they took time).
    async fn time<T>(&self, name: &str, call: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = call.await;
        let took = crate::stats::ms(start, Instant::now());
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .push(took);
        out
    }

    fn take(&self) -> BTreeMap<String, Vec<f64>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub struct Floor {
    cri: RemoteRuntime,
    node: String,
    opts: SandboxOptions,
    /// MemTotal: the kubelet's node memory capacity, which its container configs use.
    memory_capacity: u64,
    dir: tempfile::TempDir,
    /// Sandbox ids by pod full name, for removal.
    sandboxes: Arc<Mutex<HashMap<String, String>>>,
    /// Background CRI work: the observer measures, these tasks only report failures.
    tasks: Mutex<JoinSet<Result<()>>>,
    calls: CallTimes,
}

impl Floor {
    pub fn new(cri: RemoteRuntime, node: &str, cgroup_root: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("kubelet-bench-floor-")
            .tempdir()
            .map_err(|err| BenchError::io("create the floor's temp dir", err))?;
        let opts = SandboxOptions {
            pod_logs_dir: dir.path().join("pod-logs"),
            // The kubelet's defaults: the host's resolv.conf, no cluster DNS.
            dns: DnsOptions {
                resolv_conf: PathBuf::from("/etc/resolv.conf"),
                ..Default::default()
            },
            cgroup_root: cgroup_root.to_string(),
            cgroups_per_qos: true,
            cgroup_driver: Default::default(),
            cfs_quota: Default::default(),
        };
        let memory_capacity = procfs::Meminfo::current()
            .map_err(|source| BenchError::Proc {
                what: "/proc/meminfo".into(),
                source,
            })?
            .mem_total;
        Ok(Floor {
            cri,
            node: node.to_string(),
            opts,
            memory_capacity,
            dir,
            sandboxes: Arc::default(),
            tasks: Mutex::new(JoinSet::new()),
            calls: CallTimes::default(),
        })
    }

    /// Starts creating `pods`, one task each, and returns the instant each was asked for.
    pub fn create(&self, pods: &[BenchPod]) -> Result<Vec<(BenchPod, Instant)>> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let mut requested = Vec::with_capacity(pods.len());
        for bench_pod in pods {
            let pod = self.decode(bench_pod)?;
            let work = PodWork {
                cri: self.cri.clone(),
                opts: self.opts.clone(),
                pod_dir: self.dir.path().join("pods"),
                memory_capacity: self.memory_capacity,
                sandboxes: self.sandboxes.clone(),
                full_name: bench_pod.full_name.clone(),
                calls: self.calls.clone(),
            };
            tasks.spawn(work.run(pod));
            requested.push((bench_pod.clone(), Instant::now()));
        }
        Ok(requested)
    }

    /// Starts removing `pods` (StopPodSandbox, RemovePodSandbox), one task each.
    pub fn remove(&self, pods: &[BenchPod]) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for pod in pods {
            let id = self
                .sandboxes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pod.full_name);
            let cri = self.cri.clone();
            let calls = self.calls.clone();
            tasks.spawn(async move {
                // A pod whose creation failed has no sandbox: that failure is reported already.
                if let Some(id) = id {
                    calls
                        .time("StopPodSandbox", cri.stop_pod_sandbox(&id))
                        .await
                        .map_err(BenchError::cri("StopPodSandbox"))?;
                    calls
                        .time("RemovePodSandbox", cri.remove_pod_sandbox(&id))
                        .await
                        .map_err(BenchError::cri("RemovePodSandbox"))?;
                }
                Ok(())
            });
        }
    }

    /// Fails with the first error of a finished task.
    pub fn check(&self) -> Result<()> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(done) = tasks.try_join_next() {
            task_outcome(done)?;
        }
        Ok(())
    }

    /// Waits for every background task (the last removal's calls included), then hands over
    /// the call durations recorded since the last time.
    pub async fn take_calls(&self) -> Result<BTreeMap<String, Vec<f64>>> {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        while let Some(done) = tasks.join_next().await {
            task_outcome(done)?;
        }
        Ok(self.calls.take())
    }

    /// The pod as the kubelet would see it: the same manifest through the same static pod
    /// decoding and defaults.
    fn decode(&self, pod: &BenchPod) -> Result<Pod> {
        let origin = kubelet_sources::Origin::file(&self.dir.path().join(pod.file_name()));
        kubelet_sources::decode_pod(pod.manifest().as_bytes(), &origin, &self.node).map_err(|err| {
            BenchError::PodConfig {
                what: "static pod",
                pod: pod.full_name.clone(),
                reason: err.to_string(),
            }
        })
    }
}

fn task_outcome(done: std::result::Result<Result<()>, JoinError>) -> Result<()> {
    done.map_err(|join| BenchError::PodConfig {
        what: "CRI objects",
        pod: "(floor task)".into(),
        reason: join.to_string(),
    })?
}

/// One pod's creation, run as its own task.
struct PodWork {
    cri: RemoteRuntime,
    opts: SandboxOptions,
    pod_dir: PathBuf,
    memory_capacity: u64,
    sandboxes: Arc<Mutex<HashMap<String, String>>>,
    full_name: String,
    calls: CallTimes,
}

impl PodWork {
    async fn run(self, pod: Pod) -> Result<()> {
        let config_error = |what, reason: String| BenchError::PodConfig {
            what,
            pod: self.full_name.clone(),
            reason,
        };
        let sandbox_config = pod_sandbox_config(&pod, 0, &self.opts)
            .map_err(|err| config_error("sandbox config", err.to_string()))?;
        std::fs::create_dir_all(&sandbox_config.log_directory).map_err(|err| {
            BenchError::io(format!("create {}", sandbox_config.log_directory), err)
        })?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_dir = self.pod_dir.join(&uid);
        std::fs::create_dir_all(&pod_dir)
            .map_err(|err| BenchError::io(format!("create {}", pod_dir.display()), err))?;

        let calls = &self.calls;
        let sandbox_id = calls
            .time(
                "RunPodSandbox",
                self.cri.run_pod_sandbox(sandbox_config.clone(), ""),
            )
            .await
            .map_err(BenchError::cri("RunPodSandbox"))?;
        self.sandboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.full_name.clone(), sandbox_id.clone());
        let status = calls
            .time("PodSandboxStatus", self.cri.pod_sandbox_status(&sandbox_id))
            .await
            .map_err(BenchError::cri("PodSandboxStatus"))?;
        let pod_ip = status.network.map(|n| n.ip).filter(|ip| !ip.is_empty());

        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        for container in containers {
            let spec = ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            };
            let image = calls
                .time("ImageStatus", self.cri.image_status(&spec))
                .await
                .map_err(BenchError::cri("ImageStatus"))?
                .ok_or_else(|| config_error("container", format!("image {BUSYBOX} is gone")))?;
            let input = ContainerInput {
                pod: &pod,
                container,
                restart_count: 0,
                image_ref: image.id,
                mounts: Vec::new(),
                pod_ip: pod_ip.clone(),
                pod_ips: Vec::new(),
                host_ip: None,
                pod_dir: pod_dir.clone(),
                cluster_domain: String::new(),
                node_memory_capacity: self.memory_capacity,
                node_allocatable_cpu_milli: None,
                cfs_quota: Default::default(),
                memory_qos: None,
                env_sources: Default::default(),
            };
            let config = container_config(&input)
                .map_err(|err| config_error("container config", err.to_string()))?;
            let id = calls
                .time(
                    "CreateContainer",
                    self.cri
                        .create_container(&sandbox_id, config, sandbox_config.clone()),
                )
                .await
                .map_err(BenchError::cri("CreateContainer"))?;
            calls
                .time("StartContainer", self.cri.start_container(&id))
                .await
                .map_err(BenchError::cri("StartContainer"))?;
        }
        Ok(())
    }
}
