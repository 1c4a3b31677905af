//! Attach: the client's streams joined to the container's through its monitor's attach socket
//! (protocol in runtime_monitor::attach).

use crate::records::ContainerPhase;
use crate::{Inner, ServiceError};
use runtime_monitor::attach::{ClientFrame, MAX_PAYLOAD, ServerFrame};
use runtime_streaming::{ExecIo, TermSize};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tracing::Instrument;

/// Attaches to running container `id` until it exits (Some(exit code)) or the client goes
/// (None).
pub(super) async fn attach(
    inner: &Arc<Inner>,
    id: &str,
    io: ExecIo,
) -> Result<Option<i32>, ServiceError> {
    let record = inner.containers.find(id)?.get();
    if record.phase != ContainerPhase::Running {
        return Err(ServiceError::FailedPrecondition(format!(
            "cannot attach to container {}: it is not running ({:?})",
            record.id, record.phase
        )));
    }
    let id = record.id;
    let span = tracing::info_span!("container", op = "attach", container_id = %id);
    async move {
        let what = || format!("attach to container {id}");
        let state_dir = inner.layout.monitor_dir(&id);
        let socket = runtime_monitor::attach::connect(&state_dir)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .and_then(tokio::net::UnixStream::from_std)
            .map_err(ServiceError::stream(what()))?;
        let (from_monitor, to_monitor) = socket.into_split();
        let input = tokio::spawn(
            send_input(to_monitor, io.stdin, io.resize).instrument(tracing::Span::current()),
        );
        let outcome = receive_output(from_monitor, io.stdout, io.stderr).await;
        input.abort();
        match outcome.map_err(ServiceError::stream(what()))? {
            Received::Exit(code) => {
                tracing::debug!(code, "attached container exited");
                Ok(Some(code))
            }
            Received::ClientGone => Ok(None),
            Received::Closed => Err(ServiceError::Internal(format!(
                "the monitor of container {id} closed the attach connection (a client that \
                 reads too slowly is dropped)"
            ))),
        }
    }
    .instrument(span)
    .await
}

/// The client's stdin and resizes as frames; the end of stdin as CloseStdin.
async fn send_input(
    mut to: OwnedWriteHalf,
    mut stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    mut resize: Option<mpsc::Receiver<TermSize>>,
) {
    // Well below the largest frame the monitor accepts.
    let mut buf = vec![0u8; MAX_PAYLOAD / 32];
    let mut frame = Vec::new();
    loop {
        let next = tokio::select! {
            read = read_some(&mut stdin, &mut buf) => match read {
                Some(n) => ClientFrame::Stdin(buf[..n].to_vec()),
                None => {
                    stdin = None;
                    ClientFrame::CloseStdin
                }
            },
            Some(size) = recv(&mut resize) => ClientFrame::Resize {
                width: size.width,
                height: size.height,
            },
            else => return,
        };
        frame.clear();
        next.encode(&mut frame);
        if to.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Some(bytes read) or None at the end; pending for ever without a stream.
async fn read_some(
    stdin: &mut Option<Box<dyn AsyncRead + Send + Unpin>>,
    buf: &mut [u8],
) -> Option<usize> {
    let Some(stream) = stdin else {
        return std::future::pending().await;
    };
    match stream.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// The next size, None once the client's resize stream ended (then disabled by select's
/// pattern); pending for ever without one.
async fn recv(resize: &mut Option<mpsc::Receiver<TermSize>>) -> Option<TermSize> {
    match resize {
        Some(sizes) => {
            let size = sizes.recv().await;
            if size.is_none() {
                *resize = None;
            }
            size
        }
        None => std::future::pending().await,
    }
}

enum Received {
    Exit(i32),
    ClientGone,
    /// The monitor closed the connection without an exit.
    Closed,
}

async fn receive_output(
    mut from: OwnedReadHalf,
    mut stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    mut stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
) -> std::io::Result<Received> {
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(Received::Closed);
        }
        pending.extend_from_slice(&buf[..n]);
        let mut used = 0;
        while let Some((frame, len)) = ServerFrame::decode(&pending[used..])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            used += len;
            let (client, data) = match frame {
                ServerFrame::Exit(code) => {
                    for client in [&mut stdout, &mut stderr].into_iter().flatten() {
                        let _ = client.flush().await;
                    }
                    return Ok(Received::Exit(code));
                }
                ServerFrame::Stdout(data) => (&mut stdout, data),
                ServerFrame::Stderr(data) => (&mut stderr, data),
            };
            if let Some(client) = client
                && client.write_all(&data).await.is_err()
            {
                return Ok(Received::ClientGone);
            }
        }
        pending.drain(..used);
    }
}
