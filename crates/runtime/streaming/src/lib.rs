//! The runtime's streaming server: the URLs that the CRI Exec, Attach and PortForward calls
//! answer with, and the SPDY/3.1 and WebSocket protocols that clients (the API server's proxy,
//! the kubelet, kubectl, crictl, critest) speak on them.
//!
//! The server knows nothing of containers: it hands each session to a [`Backend`], which the
//! runtime implements (upstream's cri/streaming Runtime interface).

mod backend;

pub use backend::{Backend, BackendError, ExecIo, PortStream, TermSize};
