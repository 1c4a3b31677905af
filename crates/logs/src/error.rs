use kubelet_cri::CriError;
use std::path::PathBuf;
use std::time::SystemTime;
use thiserror::Error;

/// A filesystem operation that failed, with the path it was about.
#[derive(Debug, Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FileError {
    /// What was being done, as a verb phrase ("removing", "compressing", ...).
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    pub(crate) fn new(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        FileError {
            action,
            path: path.into(),
            source,
        }
    }
}

/// An error from container log rotation, cleanup or the /var/log/containers symlinks.
#[derive(Debug, Error)]
pub enum LogError {
    #[error("invalid container log max files {0}: must be at least 2")]
    InvalidMaxFiles(u32),
    #[error("listing containers: {0}")]
    ListContainers(#[source] CriError),
    #[error("container {container_id}: reading its status: {source}")]
    ContainerStatus {
        container_id: String,
        #[source]
        source: CriError,
    },
    #[error("container {container_id}: reopening its log {}: {source}", path.display())]
    ReopenLog {
        container_id: String,
        path: PathBuf,
        #[source]
        source: CriError,
    },
    #[error("container {container_id}: {source}")]
    ContainerFile {
        container_id: String,
        #[source]
        source: FileError,
    },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("the clock reads {0:?}, which has no calendar date")]
    ClockOutOfRange(SystemTime),
    #[error("log rotation failed for {} container(s): {}", errors.len(), join(errors))]
    Rotation { errors: Vec<LogError> },
}

fn join(errors: &[LogError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
