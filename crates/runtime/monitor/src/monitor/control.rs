//! ctl.sock: one request line, one answer line (`ok` or `error MESSAGE`).
//!
//! Requests: `reopen` (ReopenContainerLog: close the log and open its path again).

use crate::cri_log::LogFile;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

pub(crate) const REOPEN: &str = "reopen";

/// Serves every waiting client. Each has a second to send its line, so a stuck client delays
/// the loop (output waits in the pipe, nothing is lost) but cannot stop it.
pub(super) fn serve(listener: &UnixListener, log: &mut LogFile) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(error) = answer(stream, log) {
                    tracing::warn!(%error, "control request failed");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn answer(stream: UnixStream, log: &mut LogFile) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let mut line = String::new();
    // Requests are short; never read more than this from a client.
    BufReader::new(io::Read::take(&stream, 256)).read_line(&mut line)?;
    let reply = match line.trim() {
        REOPEN => match log.reopen() {
            Ok(()) => {
                tracing::info!("log reopened");
                "ok".to_string()
            }
            Err(error) => format!("error cannot reopen the log: {error}"),
        },
        other => format!("error unknown request {other:?}"),
    };
    writeln!(&stream, "{reply}")
}
