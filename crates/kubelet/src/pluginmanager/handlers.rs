//! What each plugin type's registration does. Device plugins go to the device manager, CSI
//! drivers to the CSI registration handler; DRA drivers are out of scope and refused with a
//! clear error the plugin receives through NotifyRegistrationStatus.

use crate::csi::CsiPlugins;
use crate::devicemanager::DeviceManager;
use std::path::Path;

pub const DEVICE_PLUGIN: &str = "DevicePlugin";
pub const CSI_PLUGIN: &str = "CSIPlugin";
pub const DRA_PLUGIN: &str = "DRAPlugin";

pub struct Handlers {
    pub devices: DeviceManager,
    pub csi: CsiPlugins,
}

impl Handlers {
    pub async fn register(
        &self,
        kind: &str,
        name: &str,
        endpoint: &Path,
        versions: &[String],
    ) -> Result<(), String> {
        match kind {
            DEVICE_PLUGIN => {
                DeviceManager::validate(name, versions).map_err(|e| e.to_string())?;
                self.devices
                    .register_plugin(name, endpoint, None)
                    .await
                    .map_err(|e| e.to_string())
            }
            CSI_PLUGIN => self
                .csi
                .register(name, endpoint, versions)
                .await
                .map_err(|e| e.to_string()),
            DRA_PLUGIN => Err(format!(
                "DRA driver {name}: dynamic resource allocation plugins are not supported by this kubelet"
            )),
            other => Err(format!(
                "no handler registered for plugin type: {other} at socket {}",
                endpoint.display()
            )),
        }
    }

    pub fn deregister(&self, kind: &str, name: &str) {
        match kind {
            DEVICE_PLUGIN => self.devices.deregister_plugin(name),
            CSI_PLUGIN => self.csi.deregister(name),
            _ => {}
        }
    }
}
