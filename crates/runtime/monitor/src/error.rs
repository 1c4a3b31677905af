use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// An error of the daemon-side monitor API, naming the container or file and the cause.
#[derive(Debug, Error)]
pub enum MonitorError {
    #[error("cannot write the monitor config {path}: {source}")]
    WriteConfig {
        path: PathBuf,
        source: runtime_state::StateError,
    },
    #[error("cannot start the monitor {binary} for container {container_id}: {source}")]
    Start {
        container_id: String,
        binary: PathBuf,
        source: io::Error,
    },
    #[error("creating container {container_id} failed: {message}")]
    Create {
        container_id: String,
        message: String,
    },
    #[error("the monitor of container {container_id} exited before the container was created")]
    MonitorDied { container_id: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the monitor in {state_dir} is gone and left no exit file")]
    Gone { state_dir: PathBuf },
    #[error("cannot talk to the monitor in {state_dir}: {source}")]
    Control {
        state_dir: PathBuf,
        source: io::Error,
    },
    #[error("the monitor in {state_dir} refused: {message}")]
    Refused { state_dir: PathBuf, message: String },
    #[error("cannot watch {state_dir}: {source}")]
    Watch {
        state_dir: PathBuf,
        source: io::Error,
    },
}
