//! What each plugin type's registration does. Device plugins go to the device manager; CSI
//! drivers are not handled yet and DRA drivers are out of scope: both are refused with a clear
//! error the plugin receives through NotifyRegistrationStatus.

use crate::devicemanager::DeviceManager;
use std::path::Path;

pub const DEVICE_PLUGIN: &str = "DevicePlugin";
pub const CSI_PLUGIN: &str = "CSIPlugin";
pub const DRA_PLUGIN: &str = "DRAPlugin";

pub struct Handlers {
    pub devices: DeviceManager,
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
            CSI_PLUGIN => Err(format!(
                "CSI driver {name}: CSI plugins are not supported by this kubelet yet"
            )),
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
        if kind == DEVICE_PLUGIN {
            self.devices.deregister_plugin(name);
        }
    }
}
