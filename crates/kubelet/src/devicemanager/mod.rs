//! The device manager (upstream pkg/kubelet/cm/devicemanager, deviceplugin v1beta1): device
//! plugins register (on device-plugins/kubelet.sock, or through the plugin watcher), their
//! ListAndWatch streams feed the node's extended resources, admission reserves devices for a
//! pod, and just before a container is created its devices are allocated (GetPreferredAllocation,
//! Allocate, PreStartContainer) and the plugin's answer goes into the container's CRI config.
//! Allocations are checkpointed, so a restarted kubelet allocates nothing twice.

pub mod checkpoint;
mod endpoint;
mod options;
mod registration;
pub mod state;

use crate::admission::resources::is_extended;
use endpoint::Endpoint;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubelet_plugin_apis::deviceplugin::v1beta1::DevicePluginOptions;
use state::{Amounts, ContainerRequest, State};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The API version the kubelet speaks with device plugins.
pub const VERSION: &str = "v1beta1";
/// Upstream's endpointStopGracePeriod: how long a dead plugin's devices count in capacity.
pub const ENDPOINT_STOP_GRACE_PERIOD: Duration = Duration::from_secs(5 * 60);
/// Under the root dir: the registration socket, the plugins' sockets, the checkpoint.
pub const DEVICE_PLUGINS_DIR: &str = "device-plugins";
pub const KUBELET_SOCKET: &str = "kubelet.sock";
/// Admission's reason when devices cannot be allocated (upstream UnexpectedAdmissionError).
pub const UNEXPECTED_ADMISSION_ERROR: &str = "UnexpectedAdmissionError";

#[derive(Debug, Error)]
pub enum DeviceManagerError {
    #[error(
        "requested API version {0:?} is not supported by kubelet. Supported versions are [\"v1beta1\"]"
    )]
    UnsupportedVersion(String),
    #[error("the ResourceName {0:?} is invalid")]
    InvalidResourceName(String),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serve the device plugin registration socket {path}: {source}")]
    Serve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device plugin {resource} at {socket}: {status}")]
    Plugin {
        resource: String,
        socket: String,
        status: String,
    },
}

pub(crate) struct Inner {
    dir: PathBuf,
    grace: Duration,
    state: Mutex<State>,
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
    /// One allocation at a time: free devices are chosen and taken under it.
    allocating: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
pub struct DeviceManager {
    inner: Arc<Inner>,
}

/// A container's devices of one resource, for the pod-resources API.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerDevices {
    pub resource: String,
    pub ids: Vec<String>,
    pub numa_nodes: Vec<i64>,
}

/// The device counts a pod's containers ask for (extended resource limits, as upstream reads
/// them), by container name. Restartable (sidecar) init containers keep running, so they count
/// as app containers.
fn device_requests(pod: &Pod) -> BTreeMap<String, ContainerRequest> {
    let Some(spec) = pod.spec.as_ref() else {
        return BTreeMap::new();
    };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (c, c.restart_policy.as_deref() != Some("Always")));
    init.chain(spec.containers.iter().map(|c| (c, false)))
        .map(|(c, init)| {
            let resources = c
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .into_iter()
                .flatten()
                .filter(|(name, _)| is_extended(name))
                .filter_map(|(name, q)| {
                    let n = kubelet_quantity::value(&q.0).ok()?;
                    (n > 0).then(|| (name.clone(), n as usize))
                })
                .collect::<BTreeMap<_, _>>();
            (c.name.clone(), ContainerRequest { init, resources })
        })
        .filter(|(_, request)| !request.resources.is_empty())
        .collect()
}

impl DeviceManager {
    /// Restores the checkpoint under `root_dir`/device-plugins and serves the registration
    /// socket there. `grace` is how long a dead plugin's devices stay in capacity.
    pub async fn start(root_dir: &Path, grace: Duration) -> Result<Self, DeviceManagerError> {
        let dir = root_dir.join(DEVICE_PLUGINS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| DeviceManagerError::Dir {
            path: dir.clone(),
            source,
        })?;
        let mut state = State::default();
        match checkpoint::read(&dir.join(checkpoint::FILE_NAME)) {
            Ok(Some(data)) => state.restore(data),
            Ok(None) => {}
            // As upstream: a bad checkpoint is logged and the manager starts empty.
            Err(e) => tracing::error!("{e}; starting without device allocations"),
        }
        let manager = DeviceManager {
            inner: Arc::new(Inner {
                dir,
                grace,
                state: Mutex::new(state),
                endpoints: Mutex::new(BTreeMap::new()),
                allocating: tokio::sync::Mutex::new(()),
            }),
        };
        registration::serve(manager.clone()).await?;
        Ok(manager)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, state: &State) {
        let path = self.inner.dir.join(checkpoint::FILE_NAME);
        if let Err(e) = checkpoint::write(&path, &state.checkpoint()) {
            tracing::error!("{e}");
        }
    }

    /// Checks a registration as upstream does: the API version and an extended resource name.
    pub fn validate(resource: &str, versions: &[String]) -> Result<(), DeviceManagerError> {
        if !versions.iter().any(|v| v == VERSION) {
            return Err(DeviceManagerError::UnsupportedVersion(versions.join(",")));
        }
        if !is_extended(resource) {
            return Err(DeviceManagerError::InvalidResourceName(
                resource.to_string(),
            ));
        }
        Ok(())
    }

    /// Connects to the plugin for `resource` on `socket` (replacing an earlier one) and follows
    /// its devices. Without `options` they are asked of the plugin.
    pub async fn register_plugin(
        &self,
        resource: &str,
        socket: &Path,
        options: Option<DevicePluginOptions>,
    ) -> Result<(), DeviceManagerError> {
        let endpoint = Endpoint::connect(self.clone(), resource, socket, options).await?;
        tracing::info!(resource, socket = %socket.display(), "device plugin registered");
        let old = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(resource.to_string(), endpoint);
        if let Some(old) = old {
            old.stop();
        }
        Ok(())
    }

    /// The plugin registered through the plugin watcher went away.
    pub fn deregister_plugin(&self, resource: &str) {
        let gone = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(resource);
        if let Some(endpoint) = gone {
            endpoint.stop();
            self.plugin_stopped(resource);
        }
    }

    pub(crate) fn set_devices(&self, resource: &str, devices: BTreeMap<String, state::Device>) {
        let mut state = self.state();
        state.set_devices(resource, devices);
        self.save(&state);
    }

    pub(crate) fn plugin_stopped(&self, resource: &str) {
        tracing::warn!(
            resource,
            "device plugin stopped: its devices are unhealthy until it registers again"
        );
        self.state().plugin_stopped(resource, Instant::now());
    }

    /// Capacity and allocatable of each device plugin resource, for the node status.
    pub fn amounts(&self) -> BTreeMap<String, Amounts> {
        let mut state = self.state();
        state.expire(Instant::now(), self.inner.grace);
        state.amounts()
    }

    /// Admission: reserves the devices `pod` asks for, after freeing those of pods not in
    /// `keep` (when given). Refused with upstream's message when too few are free.
    pub fn admit(&self, pod: &Pod, keep: Option<&BTreeSet<String>>) -> Result<(), String> {
        let wanted = device_requests(pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut state = self.state();
        if let Some(keep) = keep
            && state.retain_pods(keep)
        {
            self.save(&state);
        }
        if wanted.is_empty() {
            return Ok(());
        }
        state
            .reserve(&uid, &wanted)
            .map_err(|e| format!("Allocate failed due to {e}, which is unexpected"))
    }

    /// How many devices of each resource admitted pods hold. Admission counts them as
    /// allocatable even while the node reports fewer (upstream sanitizeNodeAllocatable): after
    /// a restart the node has none until the plugin registers again, and the pods that hold
    /// them must not be refused meanwhile.
    pub fn held(&self) -> BTreeMap<String, i64> {
        self.state().held()
    }

    /// Frees the devices of pods not in `active` (the pod ended or was removed).
    pub fn retain_pods(&self, active: &BTreeSet<String>) {
        let mut state = self.state();
        if state.retain_pods(active) {
            self.save(&state);
        }
    }

    /// The node status' view: each resource's capacity and allocatable as quantities.
    pub fn node_resources(&self) -> kubelet_nodestatus::ExtendedResources {
        let manager = self.clone();
        Arc::new(move || {
            manager
                .amounts()
                .into_iter()
                .map(|(name, a)| {
                    let q = |n: i64| Quantity(n.to_string());
                    (name, (q(a.capacity), q(a.allocatable)))
                })
                .collect()
        })
    }

    /// The devices each container of pod `uid` holds.
    pub fn container_devices(&self, uid: &str, container: &str) -> Vec<ContainerDevices> {
        let state = self.state();
        let Some(resources) = state.pods.get(uid).and_then(|c| c.get(container)) else {
            return Vec::new();
        };
        resources
            .iter()
            .filter(|(_, a)| a.devices.is_some())
            .map(|(resource, a)| ContainerDevices {
                resource: resource.clone(),
                ids: a.ids().into_iter().collect(),
                numa_nodes: numa_nodes(a.devices.iter().flat_map(|m| m.keys().copied())),
            })
            .collect()
    }

    /// Every healthy device, by resource (pod-resources GetAllocatableResources).
    pub fn allocatable_devices(&self) -> Vec<ContainerDevices> {
        let state = self.state();
        state
            .resources
            .iter()
            .flat_map(|(resource, r)| {
                r.devices
                    .iter()
                    .filter(|(_, d)| d.healthy)
                    .map(|(id, d)| ContainerDevices {
                        resource: resource.clone(),
                        ids: vec![id.clone()],
                        numa_nodes: numa_nodes(d.numa_nodes.iter().copied()),
                    })
            })
            .collect()
    }
}

/// NUMA ids as the pod-resources API reports them: the unknown node (-1) is left out.
fn numa_nodes(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    ids.filter(|n| *n >= 0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[async_trait::async_trait]
impl kubelet_kuberuntime::device_options::DeviceOptionsSource for DeviceManager {
    async fn options(
        &self,
        pod: &Pod,
        container: &Container,
    ) -> Result<kubelet_kuberuntime::device_options::DeviceOptions, String> {
        options::prepare(self, pod, container).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_extended_limits_of_every_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u"},
            "spec": {
                "initContainers": [{"name": "init", "resources": {"limits": {"example.com/dev": "1"}}}],
                "containers": [
                    {"name": "app", "resources": {"limits": {"example.com/dev": "2", "cpu": "1"}}},
                    {"name": "plain"}
                ]
            }
        }))
        .unwrap();
        let wanted = device_requests(&pod);
        assert_eq!(wanted.len(), 2);
        assert!(wanted["init"].init && !wanted["app"].init);
        assert_eq!(wanted["app"].resources["example.com/dev"], 2);
        assert!(!wanted["app"].resources.contains_key("cpu"));
    }

    #[test]
    fn registrations_are_validated_like_upstream() {
        let v = |s: &str| vec![s.to_string()];
        assert!(DeviceManager::validate("example.com/dev", &v("v1beta1")).is_ok());
        assert_eq!(
            DeviceManager::validate("example.com/dev", &v("v1alpha"))
                .unwrap_err()
                .to_string(),
            "requested API version \"v1alpha\" is not supported by kubelet. Supported versions are [\"v1beta1\"]"
        );
        assert!(DeviceManager::validate("dev", &v("v1beta1")).is_err());
        assert!(DeviceManager::validate("kubernetes.io/dev", &v("v1beta1")).is_err());
    }
}
