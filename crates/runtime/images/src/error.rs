//! The crate's one error type. Every variant names the thing it failed on and the cause; a pull
//! wraps the inner error in [`ImageError::Pull`] so the message starts with the image.

use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// An image store error. Cheap to clone (io errors are shared) so that every caller waiting on
/// one in-flight pull gets the same error.
#[derive(Debug, Clone, Error)]
pub enum ImageError {
    #[error("pull {image}: {source}")]
    Pull {
        image: String,
        #[source]
        source: Box<ImageError>,
    },
    #[error("import {path}: {source}")]
    Import {
        path: PathBuf,
        #[source]
        source: Box<ImageError>,
    },
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("image {reference} not found")]
    UnknownImage { reference: String },
    #[error("{what} not found at {registry}: {cause}")]
    NotFound {
        what: String,
        registry: String,
        cause: String,
    },
    #[error("registry {registry} is unreachable: {cause}")]
    Unreachable { registry: String, cause: String },
    #[error("registry {registry} requires credentials and none were given: {cause}")]
    NoCredentials { registry: String, cause: String },
    #[error("registry {registry} refused the credentials: {cause}")]
    Unauthorized { registry: String, cause: String },
    #[error("registry {registry} failed: {cause}")]
    Registry { registry: String, cause: String },
    #[error("no registry host of {host} can {capability} (check its hosts.toml capabilities)")]
    NoHost {
        host: String,
        capability: &'static str,
    },
    #[error("registry config {path}: {cause}")]
    Config { path: PathBuf, cause: String },
    #[error("no linux/amd64 image in manifest list {digest}")]
    NoPlatform { digest: String },
    #[error("unsupported {what} media type {media_type:?}")]
    Unsupported {
        what: &'static str,
        media_type: String,
    },
    #[error("invalid {what} {digest}: {cause}")]
    Invalid {
        what: &'static str,
        digest: String,
        cause: String,
    },
    #[error("blob {digest}: content digest is {actual}, so it was corrupted or truncated")]
    DigestMismatch { digest: String, actual: String },
    #[error("blob {digest}: {actual} bytes instead of the expected {expected}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("download of blob {digest} broke off: {cause}")]
    Download { digest: String, cause: String },
    #[error("layer {digest}: {cause}")]
    Layer { digest: String, cause: String },
    #[error("layer {digest}: unpacked content has diff id {actual}, the config says {expected}")]
    DiffIdMismatch {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("layer entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error("archive {path}: {cause}")]
    Archive { path: PathBuf, cause: String },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("image record store: {0}")]
    State(Arc<runtime_state::StateError>),
    #[error("image store {path} is open in another process")]
    Locked { path: PathBuf },
    #[error("the pull stopped unexpectedly: {cause}")]
    Aborted { cause: String },
    #[error("mount of the root file system at {target}: {cause}")]
    Mount { target: PathBuf, cause: String },
}

impl ImageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// True when the image (or its tag) does not exist, in the store or in the registry: what
    /// CRI reports as NotFound.
    pub fn is_not_found(&self) -> bool {
        match self {
            ImageError::Pull { source, .. } => source.is_not_found(),
            ImageError::UnknownImage { .. } | ImageError::NotFound { .. } => true,
            _ => false,
        }
    }
}

impl From<runtime_state::StateError> for ImageError {
    fn from(e: runtime_state::StateError) -> Self {
        ImageError::State(Arc::new(e))
    }
}

/// Maps an io error of a rustix call into [`ImageError::Io`].
pub(crate) fn rio(op: &'static str, path: impl Into<PathBuf>, e: rustix::io::Errno) -> ImageError {
    ImageError::io(op, path, e.into())
}
