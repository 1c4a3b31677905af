//! The bench's errors: each names the thing that failed and why.

use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Host(#[from] kubelet_host::HostError),
    #[error("{script} failed ({status}); its output:\n{output}")]
    Script {
        script: PathBuf,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("{script} printed no {variable}")]
    ScriptOutput { script: PathBuf, variable: String },
    #[error("CRI call {call} failed: {source}")]
    Cri {
        call: &'static str,
        source: kubelet_cri::CriError,
    },
    #[error("the runtime has no image {image} and pulling it failed: {source}")]
    Image {
        image: String,
        source: kubelet_cri::CriError,
    },
    #[error("cannot build the {what} of pod {pod}: {reason}")]
    PodConfig {
        what: &'static str,
        pod: String,
        reason: String,
    },
    #[error("cannot start the kubelet {binary}: {source}")]
    SpawnKubelet {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the kubelet {binary} exited during the run ({status}); the end of its log:\n{log_tail}"
    )]
    KubeletExited {
        binary: PathBuf,
        status: std::process::ExitStatus,
        log_tail: String,
    },
    #[error(
        "the built-in runtime {binary} exited on start ({status}); the end of its log:\n{log_tail}"
    )]
    RuntimeExited {
        binary: PathBuf,
        status: std::process::ExitStatus,
        log_tail: String,
    },
    #[error("{command} failed ({status}); its output:\n{output}")]
    Command {
        command: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("cannot read {what}: {source}")]
    Proc {
        what: String,
        source: procfs::ProcError,
    },
    #[error("no process of container {container} found in the cgroups under {root}")]
    NoContainerProcess { container: String, root: String },
    #[error("pod {pod} has no running container right after it was seen running")]
    NotRunning { pod: String },
    #[error("cannot write {path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error("interrupted")]
    Interrupted,
}

impl BenchError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn cri(call: &'static str) -> impl FnOnce(kubelet_cri::CriError) -> BenchError {
        move |source| BenchError::Cri { call, source }
    }
}

pub type Result<T> = std::result::Result<T, BenchError>;
