//! The runtime manager: owns the runtime client and what must be remembered between syncs
//! (container back-off, image pull back-off). `sync` and `kill` hold the two operations.

use crate::backoff::Backoff;
use crate::device_options::DeviceOptionsSource;
use crate::events::EventRecorder;
use crate::hooks::HookRunner;
use crate::images::ImageManager;
use crate::runtime_status::{self, PodRuntimeStatus};
use crate::sandbox_config::SandboxOptions;
use kubelet_cri::{CriError, Runtime};
use kubelet_objects::{NoApi, ObjectSource};
use kubelet_volumes::VolumeManager;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The node facts and paths the runtime manager needs.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub sandbox: SandboxOptions,
    /// ROOT/pods: each pod's data dir is ROOT/pods/<uid>.
    pub pods_dir: PathBuf,
    pub container_logs_symlink_dir: PathBuf,
    /// The node's primary IP, for status.hostIP and the downward API.
    pub host_ip: Option<String>,
    pub node_memory_capacity: u64,
    pub node_allocatable_cpu_milli: Option<u64>,
    pub serialize_image_pulls: bool,
    pub dead_containers: crate::gc::DeadContainerPolicy,
    /// MemoryQoS for containers, when its feature gate is on.
    pub memory_qos: Option<crate::container_config::resources::MemoryQos>,
}

pub struct RuntimeManager {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) images: ImageManager,
    pub(crate) backoff: Mutex<Backoff>,
    pub(crate) volumes: Arc<VolumeManager>,
    pub(crate) events: Arc<dyn EventRecorder>,
    pub(crate) hooks: Arc<dyn HookRunner>,
    pub(crate) cfg: ManagerConfig,
    /// Where the ConfigMaps, Secrets and Services of env vars and image pull Secrets come from.
    pub(crate) objects: Arc<dyn ObjectSource>,
    /// The CPU manager's cpuset for each new container; None leaves the runtime's default.
    pub(crate) container_cpus: Option<Arc<dyn crate::container_cpus::ContainerCpus>>,
    /// The device plugins' part of each container's config, when a device manager runs.
    pub(crate) device_options: Option<Arc<dyn DeviceOptionsSource>>,
    /// The runtime's name, the scheme of container IDs in pod status ("containerd://...").
    runtime_name: String,
    pub(crate) clock: WallClock,
}

/// Maps the runtime's wall-clock timestamps onto tokio's clock, so back-off measured from a
/// container's finish time also works under paused time in tests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    base: Instant,
    base_wall_ns: i64,
}

impl WallClock {
    fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            base: Instant::now(),
            base_wall_ns: wall.as_nanos() as i64,
        }
    }

    /// The instant of a CRI timestamp (nanoseconds since the epoch).
    pub(crate) fn instant_of(&self, wall_ns: i64) -> Instant {
        let offset = wall_ns - self.base_wall_ns;
        if offset >= 0 {
            self.base + Duration::from_nanos(offset as u64)
        } else {
            self.base
                .checked_sub(Duration::from_nanos(offset.unsigned_abs()))
                .unwrap_or(self.base)
        }
    }
}

/// A pod the runtime knows of, by the labels of its sandboxes and containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePod {
    pub uid: String,
    pub name: String,
    pub namespace: String,
}

impl RuntimeManager {
    pub async fn new(
        runtime: Arc<dyn Runtime>,
        volumes: Arc<VolumeManager>,
        events: Arc<dyn EventRecorder>,
        hooks: Arc<dyn HookRunner>,
        cfg: ManagerConfig,
    ) -> Result<Self, CriError> {
        let runtime_name = runtime.version().await?.runtime_name;
        Ok(Self {
            images: ImageManager::new(runtime.clone(), cfg.serialize_image_pulls, events.clone()),
            runtime,
            backoff: Mutex::new(Backoff::container()),
            volumes,
            events,
            hooks,
            cfg,
            objects: Arc::new(NoApi),
            container_cpus: None,
            device_options: None,
            runtime_name,
            clock: WallClock::new(),
        })
    }

    /// Where ConfigMaps, Secrets and Services come from. Without it (the standalone kubelet)
    /// env references to ConfigMaps and Secrets fail with "no kubeClient defined", there are no
    /// service variables and pull Secrets cannot be read.
    pub fn with_objects(mut self, objects: Arc<dyn ObjectSource>) -> Self {
        self.objects = objects;
        self
    }

    /// Where containers' devices come from (the device manager).
    pub fn with_device_options(mut self, source: Arc<dyn DeviceOptionsSource>) -> Self {
        self.device_options = Some(source);
        self
    }

    /// Pins new containers to the CPUs the CPU manager gives them.
    pub fn with_container_cpus(
        mut self,
        cpus: Arc<dyn crate::container_cpus::ContainerCpus>,
    ) -> Self {
        self.container_cpus = Some(cpus);
        self
    }

    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    pub fn runtime_name(&self) -> &str {
        &self.runtime_name
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.cfg
    }

    pub async fn pod_status(
        &self,
        uid: &str,
        name: &str,
        namespace: &str,
    ) -> Result<PodRuntimeStatus, CriError> {
        runtime_status::read_pod_status(self.runtime.as_ref(), uid, name, namespace).await
    }

    /// Every pod that has a sandbox or a container in the runtime, running or not.
    pub async fn runtime_pods(&self) -> Result<Vec<RuntimePod>, CriError> {
        let mut pods = BTreeMap::new();
        for sb in self.runtime.list_pod_sandbox(None).await? {
            if let Some(p) = runtime_pod(&sb.labels) {
                pods.insert(p.uid.clone(), p);
            }
        }
        for c in self.runtime.list_containers(None).await? {
            if let Some(p) = runtime_pod(&c.labels) {
                pods.entry(p.uid.clone()).or_insert(p);
            }
        }
        Ok(pods.into_values().collect())
    }

    /// The instant of a CRI timestamp (nanoseconds since the epoch) on tokio's clock.
    pub fn instant_of(&self, wall_ns: i64) -> Instant {
        self.clock.instant_of(wall_ns)
    }

    /// Drops back-off entries that have expired.
    pub fn gc_backoff(&self) {
        self.backoff.lock().unwrap().gc(tokio::time::Instant::now());
        self.images.gc();
    }
}

fn runtime_pod(labels: &std::collections::HashMap<String, String>) -> Option<RuntimePod> {
    let l = crate::labels::SandboxLabels::from_labels(labels);
    if l.pod_uid.is_empty() {
        return None;
    }
    Some(RuntimePod {
        uid: l.pod_uid,
        name: l.pod_name,
        namespace: l.pod_namespace,
    })
}
