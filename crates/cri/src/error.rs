use thiserror::Error;

/// An error from the container runtime, with the RPC that failed.
#[derive(Debug, Error)]
pub enum CriError {
    #[error("cannot connect to the container runtime at {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("{rpc}: not found: {message}")]
    NotFound { rpc: &'static str, message: String },
    #[error("{rpc}: not implemented by the runtime")]
    Unimplemented { rpc: &'static str },
    #[error("{rpc}: timed out after {timeout:?}")]
    Timeout {
        rpc: &'static str,
        timeout: std::time::Duration,
    },
    #[error("{rpc} failed: {message}")]
    Rpc {
        rpc: &'static str,
        code: tonic::Code,
        message: String,
    },
}

impl CriError {
    pub fn from_status(rpc: &'static str, status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::NotFound => CriError::NotFound {
                rpc,
                message: status.message().to_string(),
            },
            tonic::Code::Unimplemented => CriError::Unimplemented { rpc },
            code => CriError::Rpc {
                rpc,
                code,
                message: status.message().to_string(),
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CriError::NotFound { .. })
    }

    pub fn is_unimplemented(&self) -> bool {
        matches!(self, CriError::Unimplemented { .. })
    }
}
