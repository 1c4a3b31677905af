//! The OCI side of kubelet-rs's built-in CRI runtime: the OCI runtime spec for a CRI container
//! (built the way containerd's CRI plugin builds it), its bundle on disk, and the runc/crun
//! command line behind a table of runtime handlers.

mod caps;
pub mod cdi;
mod cdi_apply;
mod devices;
mod exec;
mod handlers;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod rootfs;
mod runtime;
mod seccomp;
mod spec;
mod user;

#[cfg(test)]
mod tests;

pub use exec::ExecFiles;
pub use handlers::{DEFAULT_HANDLER, Handlers, find_binary};
pub use runtime::{ExecOutput, OciError, OciRuntime, OciState, OciStatus};
pub use spec::{build_spec, write_bundle};

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Everything a container's spec is made from.
pub struct SpecInput<'a> {
    pub container_id: &'a str,
    /// For the io.kubernetes.cri.sandbox-id annotation.
    pub sandbox_id: &'a str,
    pub container: &'a k8s_cri::v1::ContainerConfig,
    pub sandbox: &'a k8s_cri::v1::PodSandboxConfig,
    pub image: &'a oci_spec::image::ImageConfiguration,
    /// The mounted root file system (its /etc/passwd and /etc/group name the users).
    pub rootfs: &'a Path,
    pub namespaces: NamespacePaths,
    /// linux.cgroupsPath as given (cgroupfs: /parent/id); empty leaves it to the runtime.
    pub cgroups_path: String,
    pub sandbox_files: SandboxFiles,
    /// The pod's pids limit (CRI has no field for it); None or 0 = no limit.
    pub pids_limit: Option<i64>,
    /// Where CDI specs are looked up, lowest priority first ([`cdi::DEFAULT_SPEC_DIRS`] on a node).
    pub cdi_spec_dirs: &'a [PathBuf],
    /// Whether the OCI runtime applies the `rro` mount option (its `features` lists it); CRI
    /// mounts that ask for recursive read-only are refused otherwise.
    pub recursive_read_only: bool,
}

/// Namespaces to join. None = a new namespace of that kind, or the host's when the sandbox's
/// security context says NODE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespacePaths {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub pid: Option<PathBuf>,
}

/// The sandbox's files bind-mounted into each container (each unless the CRI config mounts
/// that path itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFiles {
    pub hostname: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    /// Bound on /dev/shm; None leaves the container its own tmpfs.
    pub shm: Option<PathBuf>,
}

/// Why a spec could not be built or written.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error(
        "no command specified: the container has no command or args and the image no Entrypoint or Cmd"
    )]
    NoCommand,
    #[error("cannot resolve user {user:?}: {reason}")]
    User { user: String, reason: String },
    #[error("cannot read {path} of the container's rootfs: {source}")]
    RootfsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("privileged container requested in a sandbox that is not privileged")]
    PrivilegedNotAllowed,
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("device {path}: {source}")]
    Device {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount source {path}: {source}")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cdi(#[from] cdi::CdiError),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("invalid mount of {path}: {reason}")]
    InvalidMount { path: String, reason: String },
    #[error("invalid OCI spec: {0}")]
    Build(String),
    #[error("cannot encode the OCI spec: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot write the bundle's {path}: {source}")]
    BundleFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the bundle dir {path}: {source}")]
    BundleDir {
        path: PathBuf,
        source: std::io::Error,
    },
}
