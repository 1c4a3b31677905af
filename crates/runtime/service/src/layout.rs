//! Where everything lives. Under the root (persistent): images, records, container bundles with
//! their writable layers, the CNI result cache (host-local IPAM leases outlive a reboot too, so
//! DEL must still find the result). Under the state dir (gone at reboot): monitor state,
//! pinned namespaces and sandbox files, the OCI runtimes' own state.

use crate::ServiceError;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
    state: PathBuf,
}

impl Layout {
    pub(crate) fn create(root: &Path, state: &Path) -> Result<Layout, ServiceError> {
        let layout = Layout {
            root: root.to_path_buf(),
            state: state.to_path_buf(),
        };
        for dir in [
            layout.root.join("containers"),
            layout.state.join("containers"),
            layout.state.join("sandboxes"),
            layout.oci_root(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| ServiceError::Io {
                op: "create",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(layout)
    }

    pub(crate) fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    pub(crate) fn sandbox_records(&self) -> PathBuf {
        self.root.join("records").join("sandboxes")
    }

    pub(crate) fn container_records(&self) -> PathBuf {
        self.root.join("records").join("containers")
    }

    pub(crate) fn cni_cache(&self) -> PathBuf {
        self.root.join("cni-cache")
    }

    /// The OCI runtimes' `--root` dirs go under here, one per handler.
    pub(crate) fn oci_root(&self) -> PathBuf {
        self.state.join("oci")
    }

    /// The parent of every container's bundle dir.
    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The bundle: config.json, the rootfs mount point, the overlay upper and work dirs.
    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    pub(crate) fn monitors_dir(&self) -> PathBuf {
        self.state.join("containers")
    }

    /// The monitor's state dir (pid files, exit file, sockets).
    pub(crate) fn monitor_dir(&self, id: &str) -> PathBuf {
        self.monitors_dir().join(id)
    }

    pub(crate) fn sandboxes_dir(&self) -> PathBuf {
        self.state.join("sandboxes")
    }

    /// Pinned namespaces, hostname, resolv.conf, hosts, the shm mount, the pause monitor.
    pub(crate) fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.sandboxes_dir().join(id)
    }

    /// The read-only root of shared-PID pods' init (catatonit alone).
    pub(crate) fn pause_rootfs(&self) -> PathBuf {
        self.root.join("pause-rootfs")
    }
}
