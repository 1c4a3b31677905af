use thiserror::Error;

#[derive(Debug, Error)]
pub enum StatsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("cannot statvfs {path}: {source}")]
    Statvfs { path: String, source: nix::Error },
    #[error("container runtime: {0}")]
    Runtime(#[from] kubelet_cri::CriError),
}
