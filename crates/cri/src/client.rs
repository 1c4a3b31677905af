//! [`CriClient`]: the kubelet's [`RuntimeService`](crate::RuntimeService) and
//! [`ImageService`](crate::ImageService) over a [`Transport`], with upstream's deadlines.
//!
//! Deadlines follow upstream's `cri-client` (`remote_runtime.go`, `remote_image.go`): every call
//! gets the request timeout, except `RunPodSandbox` (twice that), `StopContainer` (the grace
//! period on top), `ExecSync` (the command timeout on top, or no deadline for a zero timeout),
//! and `PullImage` and `GetContainerEvents`, which have none: pulls of large images take as long
//! as they take.

pub(crate) mod call;
mod image_service;
mod runtime_service;

use crate::transport::Transport;
use std::time::Duration;

/// A CRI runtime behind a transport. Cloning is cheap when the transport's is, and clones reach
/// the same runtime.
#[derive(Clone, Debug)]
pub struct CriClient<T> {
    transport: T,
    request_timeout: Duration,
}

impl<T: Transport> CriClient<T> {
    pub(crate) fn with_transport(transport: T, request_timeout: Duration) -> Self {
        CriClient {
            transport,
            request_timeout,
        }
    }

    /// The deadline of ordinary calls.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}
