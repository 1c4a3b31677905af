//! Serving the runtime on a unix socket, for crictl, critest or another kubelet.

use crate::Runtime;
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

/// The kubelet's CRI client limit (16 MiB), so large ListContainers answers pass both ways.
const MAX_MESSAGE: usize = 16 << 20;
/// Root and the socket's group (crictl users) may connect; nobody else.
const SOCKET_MODE: u32 = 0o660;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot {op} the CRI socket {path}: {source}")]
    Socket {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("serving CRI on {path}: {source}")]
    Transport {
        path: PathBuf,
        source: tonic::transport::Error,
    },
}

/// Serves the RuntimeService and ImageService on `socket` until `shutdown` completes. A stale
/// socket file (left by a killed runtime) is replaced; the parent dir is created.
pub async fn serve(
    runtime: Runtime,
    socket: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let err = |op: &'static str| {
        let path = socket.to_path_buf();
        move |source| ServeError::Socket { op, path, source }
    };
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(err("create the directory of"))?;
    }
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err("remove the stale")(e)),
        _ => {}
    }
    let listener = UnixListener::bind(socket).map_err(err("bind"))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(err("set the mode of"))?;
    tracing::info!(socket = %socket.display(), "serving CRI");
    tonic::transport::Server::builder()
        .add_service(
            RuntimeServiceServer::new(runtime.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            ImageServiceServer::new(runtime)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|source| ServeError::Transport {
            path: socket.to_path_buf(),
            source,
        })
}
