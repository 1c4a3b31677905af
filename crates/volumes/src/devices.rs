//! A container's volumeDevices resolved to the host's block devices (upstream
//! makeBlockVolumes): each names a raw block volume of the pod and the absolute path the device
//! takes in the container; read-only volumes give read access only.

use crate::error::DeviceError;
use crate::manager::PodVolumes;
use k8s_openapi::api::core::v1::{Container, VolumeDevice};
use std::path::PathBuf;

/// One device of a container, from a block volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub container_path: String,
    /// What the volume's set-up left for the device (a symlink to it).
    pub host_path: PathBuf,
    /// cgroup device access: "mrw", or "r" for a read-only volume, as upstream grants.
    pub permissions: &'static str,
}

pub(crate) fn host_device(
    volumes: &PodVolumes,
    container: &Container,
    device: &VolumeDevice,
) -> Result<HostDevice, DeviceError> {
    if !device.device_path.starts_with('/') {
        return Err(DeviceError::RelativePath(device.device_path.clone()));
    }
    let volume = volumes
        .get(&device.name)
        .filter(|v| v.block)
        .ok_or_else(|| DeviceError::NotABlockVolume {
            volume: device.name.clone(),
            container: container.name.clone(),
        })?;
    Ok(HostDevice {
        container_path: device.device_path.clone(),
        host_path: volume.host_path.clone(),
        permissions: if volume.read_only { "r" } else { "mrw" },
    })
}
