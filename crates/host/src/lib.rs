//! Facts about the host and the few operations on it that several parts of the kubelet, the
//! runtime and their tests share: the machine's CPU and memory ([`machine`]), and the cgroup
//! filesystems ([`cgroupfs`]).

pub mod cgroupfs;
pub mod machine;

use std::path::PathBuf;

/// A host file that could not be read or made sense of.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: &'static str },
    #[error("cannot remove cgroup {path}: {source}")]
    RemoveCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn read(path: &str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Read {
        path: PathBuf::from(path),
        source,
    })
}
