//! A device plugin for tests, doing what the deviceplugin v1beta1 spec says and recording every
//! call: it serves DevicePlugin on a unix socket and registers with the kubelet, either the
//! classic way (Register on `device-plugins/kubelet.sock`, again whenever the kubelet re-creates
//! that socket) or through the plugin watcher (a pluginregistration v1 socket in
//! `plugins_registry`). It runs on a runtime of its own, so stopping it closes every stream the
//! way a dying plugin process would.

use crate::plugin_server::{
    Calls, PluginServer, PluginServerError, Registrar, bind, record, recorded, runtime,
};
use futures::{Stream, StreamExt};
use kubelet_plugin_apis::deviceplugin::v1beta1 as dp;
use kubelet_plugin_apis::pluginregistration::v1 as reg;
use kubelet_plugin_apis::unix;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct DevicePluginConfig {
    /// The extended resource, e.g. `example.com/dev`.
    pub resource: String,
    pub devices: Vec<String>,
    /// The kubelet's `<root dir>/device-plugins`; the plugin's socket goes there too.
    pub plugin_dir: PathBuf,
    pub socket_name: String,
    /// Env vars every Allocate answer carries, besides TEST_DEVICE_IDS.
    pub envs: BTreeMap<String, String>,
    /// Offer GetPreferredAllocation (it prefers the last devices of the list).
    pub preferred: bool,
    /// Ask for PreStartContainer.
    pub pre_start: bool,
    /// Register through this plugins_registry directory instead of kubelet.sock.
    pub registry_dir: Option<PathBuf>,
}

impl DevicePluginConfig {
    pub fn new(resource: &str, count: usize, plugin_dir: &Path) -> Self {
        DevicePluginConfig {
            resource: resource.to_string(),
            devices: (0..count).map(|i| format!("dev-{i}")).collect(),
            plugin_dir: plugin_dir.to_path_buf(),
            socket_name: format!("{}.sock", resource.replace('/', "_")),
            envs: BTreeMap::new(),
            preferred: false,
            pre_start: false,
            registry_dir: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum DevicePluginError {
    #[error(transparent)]
    Server(#[from] PluginServerError),
}

/// The env var carrying the allocated device ids, comma-separated.
pub const DEVICE_IDS_ENV: &str = "TEST_DEVICE_IDS";

#[derive(Clone)]
struct Plugin {
    cfg: Arc<DevicePluginConfig>,
    calls: Calls,
}

impl Plugin {
    /// Its answers to the plugin watcher, when it registers through plugins_registry.
    fn registrar(&self) -> Registrar {
        Registrar {
            info: reg::PluginInfo {
                r#type: "DevicePlugin".into(),
                name: self.cfg.resource.clone(),
                endpoint: self
                    .cfg
                    .plugin_dir
                    .join(&self.cfg.socket_name)
                    .display()
                    .to_string(),
                supported_versions: vec!["v1beta1".into()],
            },
            calls: self.calls.clone(),
        }
    }

    fn options(&self) -> dp::DevicePluginOptions {
        dp::DevicePluginOptions {
            pre_start_required: self.cfg.pre_start,
            get_preferred_allocation_available: self.cfg.preferred,
        }
    }
}

type DeviceStream = Pin<Box<dyn Stream<Item = Result<dp::ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl dp::device_plugin_server::DevicePlugin for Plugin {
    async fn get_device_plugin_options(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<dp::DevicePluginOptions>, Status> {
        record(&self.calls, "GetDevicePluginOptions".into());
        Ok(Response::new(self.options()))
    }

    type ListAndWatchStream = DeviceStream;

    async fn list_and_watch(
        &self,
        _: Request<dp::Empty>,
    ) -> Result<Response<DeviceStream>, Status> {
        record(&self.calls, "ListAndWatch".into());
        let devices = self
            .cfg
            .devices
            .iter()
            .map(|id| dp::Device {
                id: id.clone(),
                health: "Healthy".into(),
                topology: None,
            })
            .collect();
        let first = dp::ListAndWatchResponse { devices };
        // The list never changes; the stream stays open until the plugin stops.
        let stream =
            futures::stream::once(async move { Ok(first) }).chain(futures::stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<dp::PreferredAllocationRequest>,
    ) -> Result<Response<dp::PreferredAllocationResponse>, Status> {
        let container_responses = request
            .into_inner()
            .container_requests
            .into_iter()
            .map(|r| {
                record(
                    &self.calls,
                    format!(
                        "GetPreferredAllocation {} of {}",
                        r.allocation_size,
                        r.available_device_i_ds.join(",")
                    ),
                );
                let mut ids = r.must_include_device_i_ds.clone();
                for id in r.available_device_i_ds.iter().rev() {
                    if ids.len() >= r.allocation_size.max(0) as usize {
                        break;
                    }
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
                dp::ContainerPreferredAllocationResponse { device_i_ds: ids }
            })
            .collect();
        Ok(Response::new(dp::PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<dp::AllocateRequest>,
    ) -> Result<Response<dp::AllocateResponse>, Status> {
        let mut container_responses = Vec::new();
        for r in request.into_inner().container_requests {
            if let Some(unknown) = r
                .devices_ids
                .iter()
                .find(|id| !self.cfg.devices.contains(id))
            {
                return Err(Status::invalid_argument(format!(
                    "unknown device {unknown}"
                )));
            }
            let ids = r.devices_ids.join(",");
            record(&self.calls, format!("Allocate {ids}"));
            let mut envs = self.cfg.envs.clone();
            envs.insert(DEVICE_IDS_ENV.into(), ids.clone());
            container_responses.push(dp::ContainerAllocateResponse {
                envs,
                annotations: BTreeMap::from([("test.device-plugin/ids".to_string(), ids)]),
                ..Default::default()
            });
        }
        Ok(Response::new(dp::AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        request: Request<dp::PreStartContainerRequest>,
    ) -> Result<Response<dp::PreStartContainerResponse>, Status> {
        let ids = request.into_inner().devices_ids.join(",");
        record(&self.calls, format!("PreStartContainer {ids}"));
        Ok(Response::new(dp::PreStartContainerResponse {}))
    }
}

/// Registers on kubelet.sock, and again each time the kubelet re-creates it (a restart).
async fn register_forever(plugin: Plugin) {
    let socket = plugin.cfg.plugin_dir.join("kubelet.sock");
    // Inode and change time: a socket re-created at once may reuse the inode number.
    let mut registered_with = None;
    loop {
        let inode = std::fs::metadata(&socket)
            .ok()
            .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()));
        if inode.is_some() && inode != registered_with {
            let mut client =
                dp::registration_client::RegistrationClient::new(unix::channel(&socket));
            let request = dp::RegisterRequest {
                version: "v1beta1".into(),
                endpoint: plugin.cfg.socket_name.clone(),
                resource_name: plugin.cfg.resource.clone(),
                options: Some(plugin.options()),
            };
            match client.register(request).await {
                Ok(_) => {
                    record(&plugin.calls, "Registered".into());
                    registered_with = inode;
                }
                Err(e) => record(&plugin.calls, format!("Register failed: {}", e.message())),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running test device plugin; dropping it stops it (its socket goes too).
pub struct TestDevicePlugin {
    calls: Calls,
    _server: PluginServer,
}

impl TestDevicePlugin {
    pub fn start(cfg: DevicePluginConfig) -> Result<Self, DevicePluginError> {
        let runtime = runtime()?;
        let calls = Calls::default();
        let plugin = Plugin {
            cfg: Arc::new(cfg.clone()),
            calls: calls.clone(),
        };
        let plugin_socket = cfg.plugin_dir.join(&cfg.socket_name);
        let mut sockets = vec![plugin_socket.clone()];
        let (listener, registry) = {
            let _enter = runtime.enter();
            let listener = bind(&plugin_socket)?;
            let registry = match &cfg.registry_dir {
                Some(dir) => {
                    let path = dir.join(&cfg.socket_name);
                    sockets.push(path.clone());
                    Some(bind(&path)?)
                }
                None => None,
            };
            (listener, registry)
        };
        let serve = async move {
            let server = tonic::transport::Server::builder()
                .add_service(dp::device_plugin_server::DevicePluginServer::new(
                    plugin.clone(),
                ))
                .serve_with_incoming(UnixListenerStream::new(listener));
            tokio::spawn(server);
            match registry {
                Some(listener) => {
                    let server = tonic::transport::Server::builder()
                        .add_service(reg::registration_server::RegistrationServer::new(
                            plugin.registrar(),
                        ))
                        .serve_with_incoming(UnixListenerStream::new(listener));
                    tokio::spawn(server);
                }
                None => {
                    tokio::spawn(register_forever(plugin));
                }
            }
        };
        Ok(TestDevicePlugin {
            calls,
            _server: PluginServer::start(runtime, sockets, serve),
        })
    }

    /// Every call so far, in order: `ListAndWatch`, `Allocate dev-0`, `Registered`, ...
    pub fn calls(&self) -> Vec<String> {
        recorded(&self.calls)
    }
}
