//! Exec without a terminal: the OCI runtime in the foreground (it exits with the process's
//! code), the process's stdio our pipes, copied to and from the client.

use super::{DRAIN_AFTER_EXIT, drain};
use crate::container::{ExecTarget, exec_target};
use crate::{Inner, ServiceError};
use runtime_oci::OciError;
use runtime_streaming::ExecIo;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

/// How much of the runtime's stderr is kept to explain its failure.
const ERROR_TAIL: usize = 4096;

/// Runs `cmd` in container `id` with the client's streams; returns the exit code.
pub(super) async fn exec(
    inner: &Arc<Inner>,
    id: &str,
    cmd: Vec<String>,
    io: ExecIo,
) -> Result<i32, ServiceError> {
    let target = exec_target(inner, id, cmd, io.tty).await?;
    let span =
        tracing::info_span!("container", op = "exec", container_id = %target.id, tty = io.tty);
    async move {
        if io.tty {
            super::tty::exec(inner, target, io).await
        } else {
            exec_pipes(target, io).await
        }
    }
    .instrument(span)
    .await
}

async fn exec_pipes(target: ExecTarget, io: ExecIo) -> Result<i32, ServiceError> {
    let ExecTarget { id, oci, process } = target;
    let (command, files) = oci.exec_command(&id, &process, None)?;
    let piped_if = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let mut child = tokio::process::Command::from(command)
        .stdin(piped_if(io.stdin.is_some()))
        .stdout(piped_if(io.stdout.is_some()))
        // Always a pipe: the runtime's own error message arrives there.
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| OciError::Spawn {
            binary: oci.binary.clone(),
            command: "exec".into(),
            source,
        })?;
    let span = tracing::Span::current();
    // Stdin ends with the client's: EOF for the process when the pipe's write end drops.
    let stdin = match (io.stdin, child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(
            async move {
                if let Err(error) = tokio::io::copy(&mut from, &mut to).await {
                    tracing::debug!(%error, "exec stdin ended");
                }
            }
            .instrument(span.clone()),
        )),
        _ => None,
    };
    let stdout = match (child.stdout.take(), io.stdout) {
        (Some(from), Some(to)) => Some(tokio::spawn(copy_out(from, to).instrument(span.clone()))),
        _ => None,
    };
    let stderr = child
        .stderr
        .take()
        .map(|from| tokio::spawn(copy_keeping_tail(from, io.stderr).instrument(span.clone())));
    let status = child.wait().await.map_err(ServiceError::stream(format!(
        "wait for exec in container {id}"
    )))?;
    if let Some(task) = stdin {
        task.abort();
    }
    if let Some(task) = stdout {
        drain(task).await;
    }
    let tail = match stderr {
        Some(task) => {
            let abort = task.abort_handle();
            let tail = tokio::time::timeout(DRAIN_AFTER_EXIT, task).await;
            abort.abort();
            tail.ok().and_then(Result::ok).unwrap_or_default()
        }
        None => Vec::new(),
    };
    let code = exit_code(status);
    if code != 0 && !files.started() {
        return Err(OciError::Failed {
            binary: oci.binary.clone(),
            command: "exec".into(),
            id,
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&tail).trim().to_string(),
        }
        .into());
    }
    tracing::debug!(code, "exec ended");
    Ok(code)
}

/// The exit code, or 128 + the signal, as runc reports a killed process.
pub(super) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Copies until EOF; a client that went away ends the copy (the process then gets EPIPE).
pub(super) async fn copy_out(
    mut from: impl AsyncRead + Unpin,
    mut to: Box<dyn AsyncWrite + Send + Unpin>,
) {
    match tokio::io::copy(&mut from, &mut to).await {
        Ok(_) => {
            let _ = to.flush().await;
        }
        Err(error) => tracing::debug!(%error, "exec output ended"),
    }
}

/// Copies stderr to the client (if it asked for it) and returns the last bytes, which hold
/// the runtime's message if the runtime failed.
async fn copy_keeping_tail(
    mut from: impl AsyncRead + Unpin,
    mut to: Option<Box<dyn AsyncWrite + Send + Unpin>>,
) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > ERROR_TAIL {
            tail.drain(..tail.len() - ERROR_TAIL);
        }
        if let Some(client) = &mut to
            && client.write_all(&buf[..n]).await.is_err()
        {
            to = None;
        }
    }
    if let Some(client) = &mut to {
        let _ = client.flush().await;
    }
    tail
}
