//! Exec with a terminal: the OCI runtime's detached `exec --console-socket` under an exec
//! reaper (runtime_monitor: it collects the orphaned process's exit code), the PTY master
//! received on our console socket, copied to and from the client and resized on its request.

use super::drain;
use super::exec::copy_out;
use super::pty::Pty;
use crate::container::ExecTarget;
use crate::{Inner, ServiceError};
use runtime_monitor::ReaperReport;
use runtime_oci::OciError;
use runtime_streaming::{ExecIo, TermSize};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tracing::Instrument;

/// How long the runtime may take to send the terminal once it reported success.
const CONSOLE_WAIT: Duration = Duration::from_secs(5);
/// How long the process waits for the client's first terminal size. crictl and kubectl send
/// it as soon as their streams are up; started with it (the OCI process's consoleSize), the
/// process never sees a 0x0 terminal, which `stty size` reports as an error.
const FIRST_SIZE_WAIT: Duration = Duration::from_millis(250);
/// End-of-file for a terminal in canonical mode (VEOF, ^D): what a client's end of stdin
/// becomes, since closing the master would hang up the process's output too.
const EOT: u8 = 0x04;

pub(super) async fn exec(
    inner: &Arc<Inner>,
    target: ExecTarget,
    mut io: ExecIo,
) -> Result<i32, ServiceError> {
    let ExecTarget {
        id,
        oci,
        mut process,
    } = target;
    if let Some(sizes) = io.resize.as_mut()
        && let Ok(Some(size)) = tokio::time::timeout(FIRST_SIZE_WAIT, sizes.recv()).await
    {
        let console = oci_spec::runtime::BoxBuilder::default()
            .width(u64::from(size.width))
            .height(u64::from(size.height))
            .build();
        process.set_console_size(console.ok());
    }
    let console = ConsoleSocket::bind()?;
    let (runtime, files) = oci.exec_command(&id, &process, Some(&console.path))?;
    let mut reaper = tokio::process::Command::from(runtime_monitor::exec_reaper_command(
        &inner.options.monitor_binary,
        files.pid_file(),
        &runtime,
    ));
    let spawn_error = |source| OciError::Spawn {
        binary: inner.options.monitor_binary.clone(),
        command: "monitor exec-reaper".into(),
        source,
    };
    let mut child = reaper
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ServiceError::Internal(
            "the exec reaper has no pipes".into(),
        ));
    };
    let mut reports = BufReader::new(stdout).lines();
    let failed = |message: String| OciError::Failed {
        binary: oci.binary.clone(),
        command: "exec".into(),
        id: id.clone(),
        status: "no process started".into(),
        stderr: message,
    };
    // The runtime sends the terminal before it exits and the reaper reports `started`
    // after that; if the reaper's report ends first, the runtime failed.
    let master = tokio::select! {
        master = console.accept_master() => master?,
        report = reports.next_line() => {
            if !matches!(parse(report), Some(ReaperReport::Started(_))) {
                let _ = child.wait().await;
                return Err(failed(read_message(&mut stderr).await).into());
            }
            tokio::time::timeout(CONSOLE_WAIT, console.accept_master())
                .await
                .map_err(|_| failed("the runtime sent no terminal".into()))??
        }
    };
    drop(console);
    let pty = Arc::new(Pty::new(master).map_err(ServiceError::stream(format!(
        "the terminal of exec in {id}"
    )))?);
    let span = tracing::Span::current();
    let output = io
        .stdout
        .map(|to| tokio::spawn(copy_out(PtyReader(pty.clone()), to).instrument(span.clone())));
    let input = io
        .stdin
        .map(|from| tokio::spawn(copy_in(from, pty.clone()).instrument(span.clone())));
    let resizes = io
        .resize
        .map(|sizes| tokio::spawn(resize(sizes, pty.clone()).instrument(span.clone())));

    let mut code = None;
    while let Ok(Some(line)) = reports.next_line().await {
        if let Some(ReaperReport::Exited(exit)) = ReaperReport::parse(&line) {
            code = Some(exit);
            break;
        }
    }
    let _ = child.wait().await;
    for task in [input, resizes].into_iter().flatten() {
        task.abort();
    }
    if let Some(task) = output {
        drain(task).await;
    }
    let Some(code) = code else {
        return Err(failed(format!(
            "the exec reaper ended without the exit code: {}",
            read_message(&mut stderr).await
        ))
        .into());
    };
    tracing::debug!(code, "exec ended");
    Ok(code)
}

fn parse(line: std::io::Result<Option<String>>) -> Option<ReaperReport> {
    ReaperReport::parse(&line.ok()??)
}

async fn read_message(stderr: &mut (impl AsyncRead + Unpin)) -> String {
    let mut text = Vec::new();
    let _ = stderr.take(64 * 1024).read_to_end(&mut text).await;
    String::from_utf8_lossy(&text).trim().to_string()
}

/// The client's input to the terminal; its end becomes ^D.
async fn copy_in(mut from: Box<dyn AsyncRead + Send + Unpin>, pty: Arc<Pty>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if pty.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    if let Err(error) = pty.write_all(&[EOT]).await {
        tracing::debug!(%error, "cannot end the terminal's input");
    }
}

async fn resize(mut sizes: mpsc::Receiver<TermSize>, pty: Arc<Pty>) {
    while let Some(size) = sizes.recv().await {
        if let Err(error) = runtime_monitor::console::set_size(pty.fd(), size.width, size.height) {
            tracing::warn!(%error, "cannot resize the exec terminal");
        }
    }
}

/// The terminal's output as an AsyncRead, for [`copy_out`].
struct PtyReader(Arc<Pty>);

impl AsyncRead for PtyReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.poll_read(cx, buf)
    }
}

/// A unix socket of our own for one exec's terminal, in the temp dir so its path fits
/// sun_path; removed when dropped.
struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn bind() -> Result<ConsoleSocket, ServiceError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "kubelet-rs-console-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(ServiceError::io("bind", &path))?;
        Ok(ConsoleSocket { path, listener })
    }

    async fn accept_master(&self) -> Result<std::os::fd::OwnedFd, ServiceError> {
        let what = || format!("receive the terminal on {}", self.path.display());
        let (stream, _) = self
            .listener
            .accept()
            .await
            .map_err(ServiceError::stream(what()))?;
        loop {
            stream
                .readable()
                .await
                .map_err(ServiceError::stream(what()))?;
            match stream.try_io(tokio::io::Interest::READABLE, || {
                runtime_monitor::console::recv_master(std::os::fd::AsFd::as_fd(&stream))
            }) {
                Ok(master) => return Ok(master),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(ServiceError::stream(what())(e)),
            }
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
