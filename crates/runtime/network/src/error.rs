use std::io;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Everything that can go wrong pinning namespaces or running CNI, naming the object and cause.
#[derive(Debug, Error)]
pub enum NetworkError {
    #[error("invalid namespace request: {0}")]
    InvalidRequest(String),
    #[error("sysctl {name} refused: {reason}")]
    SysctlRefused { name: String, reason: String },
    #[error("cannot set sysctl {name}={value}: {source}")]
    SysctlWrite {
        name: String,
        value: String,
        source: io::Error,
    },
    #[error("cannot {op} {path}: {source}")]
    Namespace {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} is already a mount point: namespaces are pinned there already")]
    AlreadyPinned { path: PathBuf },
    #[error("the namespace thread panicked")]
    ThreadPanicked,
    #[error("cni config load failed: {0}")]
    Config(String),
    #[error("invalid network attachment for sandbox {sandbox_id}: {reason}")]
    InvalidAttachment { sandbox_id: String, reason: String },
    #[error("pod annotation {annotation}={value:?} for sandbox {sandbox_id}: {reason}")]
    Bandwidth {
        sandbox_id: String,
        annotation: String,
        value: String,
        reason: String,
    },
    #[error("failed to find CNI plugin {plugin:?} in path {dirs:?}")]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("CNI plugin {plugin} {command} for sandbox {sandbox_id} failed: {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        sandbox_id: String,
        message: String,
    },
    #[error("CNI plugin {plugin} {command} for sandbox {sandbox_id} timed out after {timeout:?}")]
    PluginTimeout {
        plugin: String,
        command: &'static str,
        sandbox_id: String,
        timeout: Duration,
    },
    #[error(
        "CNI plugin {plugin} ADD for sandbox {sandbox_id} returned an invalid result: {reason}"
    )]
    BadResult {
        plugin: String,
        sandbox_id: String,
        reason: String,
    },
    #[error("CNI cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
}
