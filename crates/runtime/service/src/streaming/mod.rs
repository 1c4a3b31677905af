//! The runtime's half of streaming ([`runtime_streaming::Backend`]), what containerd's CRI
//! plugin does behind its streaming server: exec through the OCI runtime ([`exec`], with a PTY
//! in [`tty`]), attach through the container's monitor ([`attach`]), port-forward from inside
//! the pod's network namespace ([`port_forward`]).

mod attach;
mod exec;
mod port_forward;

pub(crate) use port_forward::ready_sandbox;
mod pty;
mod tty;

use crate::{Inner, Runtime, ServiceError};
use runtime_streaming::{Backend, BackendError, ExecIo, PortStream};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// After the process exited, how long its output may still be copied to the client (a
/// background process can hold the pipes or the terminal open for ever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Waits for an output copy at most [`DRAIN_AFTER_EXIT`], then stops it (dropping the client's
/// stream, which tells the client the output ended).
async fn drain<T>(task: tokio::task::JoinHandle<T>) {
    let abort = task.abort_handle();
    if tokio::time::timeout(DRAIN_AFTER_EXIT, task).await.is_err() {
        tracing::debug!("output still open after the exit; cut off");
        abort.abort();
    }
}

impl Runtime {
    /// The streaming server's view of this runtime. It holds the runtime weakly: once the
    /// runtime is dropped, new sessions fail.
    pub fn streaming_backend(&self) -> Arc<dyn Backend> {
        backend(Arc::downgrade(&self.inner))
    }
}

pub(crate) fn backend(inner: Weak<Inner>) -> Arc<dyn Backend> {
    Arc::new(StreamingBackend { inner })
}

struct StreamingBackend {
    inner: Weak<Inner>,
}

impl StreamingBackend {
    fn inner(&self) -> Result<Arc<Inner>, BackendError> {
        self.inner
            .upgrade()
            .ok_or_else(|| BackendError::Failed("the container runtime has shut down".into()))
    }
}

/// Ok for exit code 0, NonZeroExit otherwise; a missing object is NotFound.
fn outcome(result: Result<i32, ServiceError>) -> Result<(), BackendError> {
    match result {
        Ok(0) => Ok(()),
        Ok(code) => Err(BackendError::NonZeroExit(code)),
        Err(error @ ServiceError::NotFound { .. }) => {
            Err(BackendError::NotFound(error.to_string()))
        }
        Err(error) => Err(BackendError::Failed(error.to_string())),
    }
}

#[async_trait::async_trait]
impl Backend for StreamingBackend {
    async fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        io: ExecIo,
    ) -> Result<(), BackendError> {
        let inner = self.inner()?;
        outcome(exec::exec(&inner, container_id, cmd, io).await)
    }

    async fn attach(&self, container_id: &str, io: ExecIo) -> Result<(), BackendError> {
        let inner = self.inner()?;
        // A client that left ends the session as a success, as upstream's does.
        outcome(
            attach::attach(&inner, container_id, io)
                .await
                .map(|code| code.unwrap_or(0)),
        )
    }

    async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
        stream: Box<dyn PortStream>,
    ) -> Result<(), BackendError> {
        let inner = self.inner()?;
        outcome(
            port_forward::port_forward(&inner, sandbox_id, port, stream)
                .await
                .map(|()| 0),
        )
    }
}
