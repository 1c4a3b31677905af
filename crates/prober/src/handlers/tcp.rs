//! The tcpSocket handler (upstream pkg/probe/tcp): success when a connection opens in time.

use super::Outcome;
use crate::types::ProbeResult;
use std::time::Duration;
use tokio::net::TcpStream;

/// Connects to `addr` (`host:port`) within `timeout` and closes the connection at once.
pub async fn probe(addr: &str, timeout: Duration) -> Outcome {
    let connected = match tokio::time::timeout(timeout, connect(addr)).await {
        Ok(result) => result.map_err(|err| err.to_string()),
        Err(_) => Err("i/o timeout".to_string()),
    };
    match connected {
        Ok(_) => Outcome {
            result: ProbeResult::Success,
            output: String::new(),
        },
        // Any dial error, a timeout included, is a failure with Go's wording.
        Err(err) => Outcome {
            result: ProbeResult::Failure,
            output: format!("dial tcp {addr}: {err}"),
        },
    }
}

/// Opens a TCP connection the way upstream's probe dialer does: with a one-second linger so
/// that probe connections do not pile up in TIME_WAIT. The caller bounds it in time. (A probe
/// leaves no unsent data behind, so the linger never makes a close wait.)
pub async fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    socket2::SockRef::from(&stream).set_linger(Some(Duration::from_secs(1)))?;
    Ok(stream)
}
