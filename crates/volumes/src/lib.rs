//! Pod volumes: set up on the host before a pod's containers start, torn down after they stop.
//! Supported now: emptyDir (disk, and medium Memory as tmpfs), hostPath (with its type checks),
//! configMap, secret, downwardAPI and projected (configMap, secret, downwardAPI and
//! serviceAccountToken sources; secrets and tokens on tmpfs only), written atomically and kept
//! up to date at every sync; subPath and subPathExpr are resolved beneath the volume and pinned
//! with a bind mount.

mod cleanup;
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

use std::path::PathBuf;

pub use error::{MountError, PathIo, SetupError, VolumeError};
pub use manager::{MountedVolume, PodVolumes, VolumeManager};
pub use subpath::ExpandError;

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
