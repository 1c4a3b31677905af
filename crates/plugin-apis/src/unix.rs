//! gRPC over unix sockets, the only transport these APIs use.

use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// A lazily connected channel to the gRPC server on `socket`; the first call connects, and a
/// call fails with Unavailable while nothing listens there.
pub fn channel(socket: &Path) -> Channel {
    let socket: PathBuf = socket.to_path_buf();
    // The URI is required by tonic but unused: every connection goes to the socket.
    Endpoint::from_static("http://[::]:0").connect_with_connector_lazy(tower::service_fn(
        move |_| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        },
    ))
}
