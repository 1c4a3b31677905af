//! The runtime's streaming server: the URLs that the CRI Exec, Attach and PortForward calls
//! answer with, and the SPDY/3.1 and WebSocket protocols that clients (the API server's proxy,
//! the kubelet, kubectl, crictl, critest) speak on them.
//!
//! The server knows nothing of containers: it hands each session to a [`Backend`], which the
//! runtime implements (upstream's cri/streaming Runtime interface).
//!
//! ```ignore
//! let server = Server::new(Config::default(), backend);
//! let address = server.start().await?;
//! // in the CRI Exec handler:
//! let response = server.get_exec(&request)?;
//! ```

mod backend;
mod portforward;
mod remotecommand;
mod resize;
mod server;
pub mod spdy;
mod status;
mod tokens;
mod websocket;

pub use backend::{Backend, BackendError, ExecIo, PortStream, TermSize};
pub use portforward::parse_ports;
pub use server::{Config, RequestError, Server};
pub use websocket::tunnel::{PROTOCOL as SPDY_TUNNEL_PROTOCOL, TunnelIo};
