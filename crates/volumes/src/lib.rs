//! Pod volumes: set up on the host before a pod's containers start, torn down after they stop.
//! Supported now: emptyDir (disk, and medium Memory as tmpfs), hostPath (with its type checks),
//! configMap, secret, downwardAPI and projected (configMap, secret, downwardAPI and
//! serviceAccountToken sources; secrets and tokens on tmpfs only), written atomically and kept
//! up to date at every sync; subPath and subPathExpr are resolved beneath the volume and pinned
//! with a bind mount. persistentVolumeClaim volumes are set up and torn down through the
//! [`ClaimVolumes`] seam; the raw block ones among them reach containers as volumeDevices.

mod claims;
mod cleanup;
mod devices;
mod empty_dir;
mod error;
mod fs_group;
mod host_path;
mod layout;
mod manager;
mod mountinfo;
mod node;
mod projection;
mod source;
mod subpath;
mod token;

use std::path::{Path, PathBuf};

pub use claims::{ClaimMount, ClaimVolumes, NoClaims};
pub use devices::HostDevice;
pub use error::{DeviceError, MountError, PathIo, SetupError, VolumeError};
pub use fs_group::{FsGroup, set_ownership};
pub use layout::is_single_component;
pub use manager::{MountedVolume, PodVolumes, VolumeManager};
pub use subpath::ExpandError;
pub use token::TokenCache;

/// One mount of a container, resolved to a host path (subPath already applied safely).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    pub container_path: String,
    pub host_path: PathBuf,
    pub read_only: bool,
    pub propagation: Propagation,
}

/// Mount propagation, as `volumeMounts[].mountPropagation` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    None,
    HostToContainer,
    Bidirectional,
}

/// Whether something is mounted exactly at `path`, from the kernel's mount table.
pub fn is_mount_point(path: &Path) -> std::io::Result<bool> {
    Ok(mountinfo::fs_type_at(path)?.is_some())
}

/// The directory of a pod's volumes served by `plugin` (`kubernetes.io~csi`, ...):
/// ROOT/pods/UID/volumes/PLUGIN.
pub fn pod_plugin_dir(root: &Path, pod_uid: &str, plugin: &str) -> Result<PathBuf, VolumeError> {
    Ok(layout::PodDir::new(root, pod_uid)?
        .path()
        .join("volumes")
        .join(plugin))
}

/// The directory of a pod's raw block devices mapped by `plugin`:
/// ROOT/pods/UID/volumeDevices/PLUGIN.
pub fn pod_device_dir(root: &Path, pod_uid: &str, plugin: &str) -> Result<PathBuf, VolumeError> {
    Ok(layout::PodDir::new(root, pod_uid)?
        .path()
        .join("volumeDevices")
        .join(plugin))
}

/// The directory of a pod's volume `name` served by `plugin`: ROOT/pods/UID/volumes/PLUGIN/NAME.
pub fn pod_volume_dir(
    root: &Path,
    pod_uid: &str,
    plugin: &str,
    name: &str,
) -> Result<PathBuf, VolumeError> {
    if !layout::is_single_component(name) {
        return Err(VolumeError::Volume {
            volume: name.to_owned(),
            cause: SetupError::InvalidName,
        });
    }
    Ok(layout::PodDir::new(root, pod_uid)?.volume(plugin, name))
}
