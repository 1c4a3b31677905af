//! The service's errors, each naming the object and the cause, and their gRPC codes.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} id prefix {prefix:?} is ambiguous: it matches {matches} {kind}s")]
    Ambiguous {
        kind: &'static str,
        prefix: String,
        matches: usize,
    },
    #[error("name {name:?} is reserved for {holder:?}")]
    NameReserved { name: String, holder: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    State(#[from] runtime_state::StateError),
    #[error(transparent)]
    Image(#[from] runtime_images::ImageError),
    #[error(transparent)]
    Network(#[from] runtime_network::NetworkError),
    #[error(transparent)]
    Spec(#[from] runtime_oci::SpecError),
    #[error(transparent)]
    Oci(#[from] runtime_oci::OciError),
    #[error(transparent)]
    Monitor(#[from] runtime_monitor::MonitorError),
    /// A streaming session's I/O (exec, attach, port-forward) failed.
    #[error("{what}: {source}")]
    Stream { what: String, source: io::Error },
    #[error("{what} timed out after {seconds} s")]
    Timeout { what: String, seconds: i64 },
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ServiceError::Io { op, path, source }
    }

    pub(crate) fn stream(what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| ServiceError::Stream { what, source }
    }

    /// A blocking task that panicked or was cancelled.
    pub(crate) fn join(err: tokio::task::JoinError) -> Self {
        ServiceError::Internal(format!("a blocking task failed: {err}"))
    }

    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            ServiceError::NotFound { .. } => Code::NotFound,
            ServiceError::Ambiguous { .. } | ServiceError::InvalidArgument(_) => {
                Code::InvalidArgument
            }
            ServiceError::NameReserved { .. } => Code::AlreadyExists,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::Timeout { .. } => Code::DeadlineExceeded,
            ServiceError::Image(err) if err.is_not_found() => Code::NotFound,
            ServiceError::Oci(runtime_oci::OciError::UnknownHandler { .. }) => {
                Code::InvalidArgument
            }
            _ => Code::Unknown,
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(err: ServiceError) -> Self {
        tonic::Status::new(err.code(), err.to_string())
    }
}
