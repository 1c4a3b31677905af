//! Container log rotation and the /var/log/containers symlinks (upstream pkg/kubelet/logs and
//! the legacy log symlinks of pkg/kubelet/kuberuntime).

mod error;
mod files;
mod manager;
mod symlink;

pub use error::{FileError, LogError};
pub use manager::{
    ContainerLogManager, DEFAULT_MONITOR_INTERVAL, WallClock, remove_container_logs,
};
pub use symlink::{
    create_symlink, remove_dangling_symlinks, remove_symlinks_for, symlink_name, symlink_path,
};
