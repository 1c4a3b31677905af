//! The four probe handlers (upstream pkg/probe) and the dispatch between them.

pub mod exec;
pub mod grpc;
pub mod http;
pub mod port;
pub mod tcp;

use crate::types::ProbeResult;
use k8s_openapi::api::core::v1::{Container, Probe};
use kubelet_cri::{CriError, RuntimeService};
use port::{PortError, join_host_port, resolve_container_port};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Upstream reads at most 10 KiB of an exec probe's output or an HTTP probe's body.
pub const MAX_OUTPUT_BYTES: usize = 10 * 1024;

/// What one probe found: the result and the text that goes into events and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: ProbeResult,
    pub output: String,
}

/// A probe that could not be run at all (upstream's "unknown" result with an error): the worker
/// throws the attempt away instead of counting it.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("the probe has no handler (exec, httpGet, tcpSocket or grpc)")]
    MissingHandler,
    #[error("the pod has no IP to probe")]
    NoPodIp,
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("invalid probe URL {url:?}: {source}")]
    Url {
        url: String,
        source: url::ParseError,
    },
    #[error("invalid HTTP header {0:?} in the probe")]
    Header(String),
    #[error("exec probe: {0}")]
    Exec(#[source] CriError),
}

/// Text of at most [`MAX_OUTPUT_BYTES`] bytes, invalid UTF-8 replaced.
pub fn truncate_output(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT_BYTES)]).into_owned()
}

/// The container a probe runs against.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub container: &'a Container,
    pub container_id: &'a str,
    pub pod_ip: Option<&'a str>,
}

/// Runs probes of any kind; one per manager, shared by its workers.
#[derive(Clone)]
pub struct Handlers {
    runtime: Arc<dyn RuntimeService>,
    http: http::HttpProber,
}

impl Handlers {
    pub fn new(runtime: Arc<dyn RuntimeService>) -> Self {
        Handlers {
            runtime,
            http: http::HttpProber::default(),
        }
    }

    pub fn runtime(&self) -> &Arc<dyn RuntimeService> {
        &self.runtime
    }

    pub fn http(&self) -> &http::HttpProber {
        &self.http
    }

    /// Runs `probe` once against `target` (upstream `runProbe`).
    pub async fn run(
        &self,
        probe: &Probe,
        target: Target<'_>,
        timeout: Duration,
    ) -> Result<Outcome, HandlerError> {
        if let Some(action) = &probe.exec {
            let command = action.command.as_deref().unwrap_or_default();
            return exec::probe(
                self.runtime.as_ref(),
                target.container,
                target.container_id,
                command,
                timeout,
            )
            .await;
        }
        if let Some(action) = &probe.http_get {
            let request = http::build_request(action, target.container, target.pod_ip)?;
            return Ok(self.http.probe(&request, timeout).await);
        }
        if let Some(action) = &probe.tcp_socket {
            let port = resolve_container_port(&action.port, target.container)?;
            let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
                Some(host) => host,
                None => target.pod_ip.ok_or(HandlerError::NoPodIp)?,
            };
            return Ok(tcp::probe(&join_host_port(host, port), timeout).await);
        }
        if let Some(action) = &probe.grpc {
            let host = target.pod_ip.ok_or(HandlerError::NoPodIp)?;
            let port = u16::try_from(action.port)
                .ok()
                .filter(|&p| p > 0)
                .ok_or(PortError::OutOfRange(i64::from(action.port)))?;
            let service = action.service.as_deref().unwrap_or_default();
            return Ok(grpc::probe(&join_host_port(host, port), service, timeout).await);
        }
        Err(HandlerError::MissingHandler)
    }
}
