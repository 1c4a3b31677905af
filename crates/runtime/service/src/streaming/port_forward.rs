//! Port-forward: a TCP connection to localhost:PORT made inside the pod's network namespace,
//! copied both ways with the client's stream.

use crate::records::{SandboxPhase, SandboxRecord};
use crate::sandbox::Modes;
use crate::{Inner, ServiceError};
use nix::sched::CloneFlags;
use runtime_streaming::PortStream;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

/// How long a connection to the pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Once one direction of a forward ended, how long the other may still finish.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The record of sandbox `id` (an id or prefix), which must be ready to forward to.
pub(crate) fn ready_sandbox(inner: &Inner, id: &str) -> Result<SandboxRecord, ServiceError> {
    let record = inner.sandboxes.find(id)?.get();
    if record.phase != SandboxPhase::Ready {
        return Err(ServiceError::FailedPrecondition(format!(
            "cannot forward to sandbox {}: it is not ready ({:?})",
            record.id, record.phase
        )));
    }
    Ok(record)
}

pub(super) async fn port_forward(
    inner: &Arc<Inner>,
    sandbox_id: &str,
    port: u16,
    mut stream: Box<dyn PortStream>,
) -> Result<(), ServiceError> {
    let record = ready_sandbox(inner, sandbox_id)?;
    let netns = if Modes::of(&record.config).host_network {
        None
    } else {
        Some(record.namespaces.net.clone().ok_or_else(|| {
            ServiceError::Internal(format!("sandbox {} has no network namespace", record.id))
        })?)
    };
    let id = record.id;
    let span = tracing::info_span!("sandbox", op = "port_forward", sandbox_id = %id, port);
    async move {
        let target = dial(netns, port)
            .await
            .map_err(ServiceError::stream(format!(
                "cannot connect to port {port} in sandbox {id}"
            )))?;
        let mut target = tokio::net::TcpStream::from_std(target)
            .map_err(ServiceError::stream(format!("port {port} in sandbox {id}")))?;
        let (mut from_pod, mut to_pod) = target.split();
        let (mut from_client, mut to_client) = tokio::io::split(&mut stream);
        // Each direction ends with a shutdown of the other side's write half, so a half-close
        // passes through.
        let sending = async {
            let sent = tokio::io::copy(&mut from_client, &mut to_pod).await;
            let _ = to_pod.shutdown().await;
            sent
        };
        let receiving = async {
            let received = tokio::io::copy(&mut from_pod, &mut to_client).await;
            let _ = to_client.shutdown().await;
            received
        };
        tokio::pin!(sending, receiving);
        // As containerd: the forward ends when either direction does, and the other gets a
        // moment to finish, so a server that answers and closes ends the session even while
        // the client keeps its side open.
        let ended = tokio::select! {
            sent = &mut sending => {
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut receiving).await;
                sent
            }
            received = &mut receiving => {
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut sending).await;
                received
            }
        };
        ended.map_err(ServiceError::stream(format!(
            "forwarding port {port} in sandbox {id}"
        )))?;
        tracing::debug!("port-forward ended");
        Ok(())
    }
    .instrument(span)
    .await
}

/// Connects from a thread of its own that enters `netns` (None: stays in ours): a thread's
/// network namespace is its own, and a tokio worker must never have its changed.
async fn dial(netns: Option<PathBuf>, port: u16) -> io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let _ = tx.send(dial_in(netns.as_deref(), port));
        })?;
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("the dialing thread died")))
}

/// 127.0.0.1, then ::1 if that refused (as containerd tries localhost); non-blocking for tokio.
fn dial_in(netns: Option<&Path>, port: u16) -> io::Result<TcpStream> {
    if let Some(path) = netns {
        let ns = std::fs::File::open(path)?;
        nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)?;
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|v6_error| {
                // The v4 refusal is the telling one when the pod has no IPv6 at all.
                if v6_error.kind() == io::ErrorKind::ConnectionRefused {
                    v6_error
                } else {
                    error
                }
            })?
        }
        other => other?,
    };
    stream.set_nonblocking(true)?;
    Ok(stream)
}
