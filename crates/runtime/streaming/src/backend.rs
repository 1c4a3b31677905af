//! What the streaming server asks of the runtime.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// A terminal's size, from the client's resize stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// The client's side of an exec or attach session: each stream the client asked for, already
/// negotiated. With `tty`, stderr is None (a terminal has one output) and `resize` carries the
/// client's size changes, the first one as soon as the client sends it.
pub struct ExecIo {
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub tty: bool,
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// Why a session ended without success. The server turns it into upstream's status JSON on
/// the error channel: `NonZeroExit` becomes a Failure with reason NonZeroExitCode and an
/// ExitCode cause, everything else a Failure with the message.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("command terminated with non-zero exit code: {0}")]
    NonZeroExit(i32),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// The runtime's half of streaming (upstream pkg/kubelet/cri/streaming Runtime).
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Runs `cmd` in the running container and streams its stdio until it exits; Ok only for
    /// exit code 0.
    async fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        io: ExecIo,
    ) -> Result<(), BackendError>;

    /// Joins the running container's stdio (its monitor's attach socket) until the container
    /// exits or the client goes; Ok for exit code 0 or a client that left.
    async fn attach(&self, container_id: &str, io: ExecIo) -> Result<(), BackendError>;

    /// Connects `stream` to `port` on localhost inside the sandbox's network namespace and
    /// copies both ways until either side closes.
    async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
        stream: Box<dyn PortStream>,
    ) -> Result<(), BackendError>;
}

/// One forwarded connection's client side.
pub trait PortStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> PortStream for T {}
