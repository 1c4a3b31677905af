//! Typed errors: each names the volume (or mount) and the cause, so they read well in a
//! FailedMount event.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

use crate::subpath::ExpandError;
use kubelet_objects::ObjectError;

/// An I/O failure on one path, with what was being done to it.
#[derive(Debug, Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct PathIo {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl PathIo {
    pub(crate) fn new(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Self {
        Self {
            action,
            path: path.into(),
            source: source.into(),
        }
    }
}

#[derive(Debug, Error)]
pub enum VolumeError {
    #[error("invalid pod UID {0:?}")]
    InvalidPodUid(String),
    #[error("volume {volume:?}: {cause}")]
    Volume { volume: String, cause: SetupError },
    #[error("volumeMount {mount:?} of container {container:?}: {cause}")]
    Mount {
        container: String,
        mount: String,
        cause: MountError,
    },
    #[error("volumeDevice {device:?} of container {container:?}: {cause}")]
    Device {
        container: String,
        device: String,
        cause: DeviceError,
    },
    #[error("cannot clean up pod {uid}: {cause}")]
    Cleanup { uid: String, cause: PathIo },
    #[error("cannot clean up pod {uid}: {} is still mounted", path.display())]
    StillMounted { uid: String, path: PathBuf },
    #[error("cannot tear down the volumes of pod {uid}: {cause}")]
    Claims { uid: String, cause: String },
    #[error(transparent)]
    Io(#[from] PathIo),
}

/// Why one volume could not be set up.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("volume type {0} is not supported yet")]
    Unsupported(String),
    #[error("invalid volume name: it must be a single path component")]
    InvalidName,
    #[error("emptyDir medium {0:?} is not supported yet")]
    UnsupportedMedium(String),
    #[error("invalid emptyDir sizeLimit {0:?}")]
    InvalidSizeLimit(String),
    #[error("{} exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("invalid HostPath `{0}`: must not contain '..'")]
    HostPathBacksteps(String),
    #[error("hostPath {0} doesn't exist")]
    HostPathMissing(String),
    #[error("hostPath type check failed: {path} is not a {expected}, it's a {actual}")]
    HostPathType {
        path: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error(
        "hostPath type check failed, {path} is not a {expected}, unable to determine its type: only recognise file, directory, socket, block device and character device"
    )]
    HostPathUnknownType {
        path: String,
        expected: &'static str,
    },
    #[error("{0} is an invalid volume type")]
    InvalidHostPathType(String),
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("configmap references non-existent config key: {0}")]
    MissingConfigMapKey(String),
    #[error("secret references non-existent secret key: {0}")]
    MissingSecretKey(String),
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("invalid mode {0:#o}: must be a number between 0 and 0777 (octal), both inclusive")]
    InvalidMode(i32),
    #[error("{0}")]
    DownwardApi(String),
    /// A persistentVolumeClaim or inline CSI volume, as its driver's side said.
    #[error("{0}")]
    Claim(String),
    #[error("the TokenRequest answer holds no token")]
    NoToken,
    #[error("failed to fetch token: {0}")]
    TokenFetch(Box<SetupError>),
    #[error("token expired and refresh failed: {0}")]
    TokenExpired(Box<SetupError>),
    /// Several sources of one volume failed; shown as upstream's aggregate error: `[a, b]`.
    #[error("[{}]", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Several(Vec<SetupError>),
    #[error(transparent)]
    Io(#[from] PathIo),
}

impl SetupError {
    /// None for no errors, the error itself for one, all of them for more; like upstream's
    /// aggregate, an error with the same message as an earlier one is left out.
    pub(crate) fn aggregate(errors: Vec<SetupError>) -> Option<SetupError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut errors: Vec<SetupError> = errors
            .into_iter()
            .filter(|e| seen.insert(e.to_string()))
            .collect();
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(SetupError::Several(errors)),
        }
    }
}

/// Why one volumeDevice of a container could not be resolved; upstream's words.
#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("error DevicePath `{0}` must be an absolute path")]
    RelativePath(String),
    /// Missing, or not a raw block volume.
    #[error("cannot find volume {volume:?} to pass into container {container:?}")]
    NotABlockVolume { volume: String, container: String },
}

/// Why one volumeMount of a container could not be resolved.
#[derive(Debug, Error)]
pub enum MountError {
    #[error("cannot find volume {0:?} to mount into the container")]
    MissingVolume(String),
    #[error("invalid container name {0:?}: it must be a single path component")]
    InvalidContainerName(String),
    #[error("invalid MountPropagation mode: {0:?}")]
    InvalidPropagation(String),
    #[error("subPath `{0}` must not be an absolute path")]
    AbsoluteSubPath(String),
    #[error("subPath `{0}` must not contain '..'")]
    SubPathBacksteps(String),
    #[error("subPath `{sub_path}`: the symlink at `{at}` points outside of the volume")]
    SymlinkEscapes { sub_path: String, at: String },
    #[error("subPath `{0}`: too many levels of symbolic links")]
    TooManySymlinks(String),
    #[error("subPath `{sub_path}`: `{at}` is not a directory")]
    NotADirectory { sub_path: String, at: String },
    #[error("subPathExpr: {0}")]
    Expand(#[from] ExpandError),
    #[error(transparent)]
    Io(#[from] PathIo),
}
