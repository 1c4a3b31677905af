//! One registered device plugin (upstream endpoint.go): its client and options, and the task
//! following its ListAndWatch stream. When the stream ends the plugin's devices turn unhealthy.

use super::state::{Device, HEALTHY};
use super::{DeviceManager, DeviceManagerError};
use futures::StreamExt;
use kubelet_plugin_apis::deviceplugin::v1beta1::device_plugin_client::DevicePluginClient;
use kubelet_plugin_apis::deviceplugin::v1beta1::{
    DevicePluginOptions, Empty, ListAndWatchResponse,
};
use kubelet_plugin_apis::unix;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tonic::transport::Channel;

#[derive(Clone)]
pub struct Endpoint {
    pub client: DevicePluginClient<Channel>,
    pub options: DevicePluginOptions,
    task: Arc<tokio::task::AbortHandle>,
}

fn devices(response: ListAndWatchResponse) -> BTreeMap<String, Device> {
    response
        .devices
        .into_iter()
        .map(|d| {
            let numa_nodes = d
                .topology
                .map(|t| t.nodes.iter().map(|n| n.id).collect())
                .unwrap_or_default();
            (
                d.id,
                Device {
                    healthy: d.health == HEALTHY,
                    numa_nodes,
                },
            )
        })
        .collect()
}

impl Endpoint {
    pub async fn connect(
        manager: DeviceManager,
        resource: &str,
        socket: &Path,
        options: Option<DevicePluginOptions>,
    ) -> Result<Self, DeviceManagerError> {
        let plugin_error = |status: tonic::Status| DeviceManagerError::Plugin {
            resource: resource.to_string(),
            socket: socket.display().to_string(),
            status: status.message().to_string(),
        };
        let mut client = DevicePluginClient::new(unix::channel(socket));
        let options = match options {
            Some(o) => o,
            None => client
                .get_device_plugin_options(Empty {})
                .await
                .map_err(plugin_error)?
                .into_inner(),
        };
        let mut stream = client
            .list_and_watch(Empty {})
            .await
            .map_err(plugin_error)?
            .into_inner();
        let name = resource.to_string();
        let task = tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(response) => manager.set_devices(&name, devices(response)),
                    Err(e) => {
                        tracing::warn!(resource = %name, "ListAndWatch ended: {}", e.message());
                        break;
                    }
                }
            }
            manager.plugin_stopped(&name);
        });
        Ok(Endpoint {
            client,
            options,
            task: Arc::new(task.abort_handle()),
        })
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}
