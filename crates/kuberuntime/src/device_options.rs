//! What the node's resource managers add to a container's CRI config (upstream
//! RunContainerOptions from the container manager's GetResources): the device plugins' envs,
//! mounts, devices, annotations and CDI devices. The kubelet injects the source.

use k8s_openapi::api::core::v1::{Container, Pod};
use kubelet_cri::api::{CdiDevice, ContainerConfig, Device, KeyValue, Mount};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceOptions {
    pub envs: Vec<KeyValue>,
    pub mounts: Vec<Mount>,
    pub devices: Vec<Device>,
    pub annotations: BTreeMap<String, String>,
    pub cdi_devices: Vec<CdiDevice>,
}

impl DeviceOptions {
    /// Upstream order: the device envs and mounts come before the container's own, so the
    /// container's env wins a clash; its own annotations win too.
    pub fn apply(self, config: &mut ContainerConfig) {
        let own_envs = std::mem::take(&mut config.envs);
        config.envs = self.envs.into_iter().chain(own_envs).collect();
        let own_mounts = std::mem::take(&mut config.mounts);
        config.mounts = self.mounts.into_iter().chain(own_mounts).collect();
        config.devices.extend(self.devices);
        for (k, v) in self.annotations {
            config.annotations.entry(k).or_insert(v);
        }
        config.cdi_devices.extend(self.cdi_devices);
    }
}

/// Prepares the devices a container was given, just before it is created (the device
/// manager's Allocate and PreStartContainer); an error fails this start of the container.
#[async_trait::async_trait]
pub trait DeviceOptionsSource: Send + Sync {
    async fn options(&self, pod: &Pod, container: &Container) -> Result<DeviceOptions, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_options_come_first_and_own_annotations_win() {
        let mut config = ContainerConfig {
            envs: vec![KeyValue {
                key: "A".into(),
                value: "own".into(),
            }],
            annotations: [("x".to_string(), "own".to_string())].into(),
            ..Default::default()
        };
        DeviceOptions {
            envs: vec![KeyValue {
                key: "A".into(),
                value: "dev".into(),
            }],
            annotations: BTreeMap::from([
                ("x".to_string(), "dev".to_string()),
                ("y".to_string(), "dev".to_string()),
            ]),
            cdi_devices: vec![CdiDevice {
                name: "vendor.com/gpu=0".into(),
            }],
            ..Default::default()
        }
        .apply(&mut config);
        assert_eq!(config.envs[0].value, "dev");
        assert_eq!(config.envs[1].value, "own");
        assert_eq!(config.annotations["x"], "own");
        assert_eq!(config.annotations["y"], "dev");
        assert_eq!(config.cdi_devices.len(), 1);
    }
}
