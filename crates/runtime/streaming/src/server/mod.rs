//! The streaming server (upstream pkg/kubelet/cri/streaming/server.go): the CRI handlers call
//! `get_exec` / `get_attach` / `get_port_forward` for a URL, and the client then connects to it.

mod http;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_cri::v1::{
    AttachRequest, AttachResponse, ExecRequest, ExecResponse, PortForwardRequest,
    PortForwardResponse,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::tokens::{CacheError, CachedRequest, RequestCache};

#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen; port 0 picks a free one.
    pub address: SocketAddr,
    /// Closes a session after this long without traffic (--streaming-connection-idle-timeout);
    /// zero means never.
    pub stream_idle_timeout: Duration,
    /// How long a SPDY client has to open the streams it promised.
    pub stream_creation_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            stream_idle_timeout: Duration::from_secs(4 * 60 * 60),
            stream_creation_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    fn idle_timeout(&self) -> Option<Duration> {
        (!self.stream_idle_timeout.is_zero()).then_some(self.stream_idle_timeout)
    }
}

/// Why a Get* call gave no URL. `InvalidArgument` maps to gRPC INVALID_ARGUMENT,
/// `TooManyRequests` to RESOURCE_EXHAUSTED, the rest to INTERNAL / UNAVAILABLE.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("{0}")]
    InvalidArgument(&'static str),
    #[error("maximum number of in-flight requests exceeded")]
    TooManyRequests,
    #[error("{0}")]
    Internal(String),
    #[error("streaming server is not started")]
    NotStarted,
}

impl From<CacheError> for RequestError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Full => RequestError::TooManyRequests,
            CacheError::Random(msg) => RequestError::Internal(msg),
        }
    }
}

struct Inner {
    config: Config,
    backend: Arc<dyn Backend>,
    cache: RequestCache,
    address: OnceLock<SocketAddr>,
}

/// The server; clones share it.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
    accept: Arc<OnceLock<JoinHandle<()>>>,
}

impl Server {
    pub fn new(config: Config, backend: Arc<dyn Backend>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                backend,
                cache: RequestCache::default(),
                address: OnceLock::new(),
            }),
            accept: Arc::new(OnceLock::new()),
        }
    }

    /// Binds and starts serving in the background; returns the bound address (with the real
    /// port when the config asked for port 0). Calling it twice is an error.
    pub async fn start(&self) -> std::io::Result<SocketAddr> {
        if self.inner.address.get().is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "streaming server already started",
            ));
        }
        let listener = TcpListener::bind(self.inner.config.address).await?;
        let address = listener.local_addr()?;
        self.inner.address.set(address).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "streaming server already started",
            )
        })?;
        let handle = tokio::spawn(http::accept_loop(listener, self.inner.clone()));
        let _ = self.accept.set(handle);
        tracing::info!(%address, "streaming server listening");
        Ok(address)
    }

    /// Stops accepting connections; sessions already running go on.
    pub fn stop(&self) {
        if let Some(handle) = self.accept.get() {
            handle.abort();
        }
    }

    pub fn get_exec(&self, req: &ExecRequest) -> Result<ExecResponse, RequestError> {
        let streams = Streams {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            tty: req.tty,
        };
        streams.validate(
            &req.container_id,
            "one of stdin, stdout, or stderr must be set",
        )?;
        let url = self.url("exec", CachedRequest::Exec(req.clone()))?;
        Ok(ExecResponse { url })
    }

    pub fn get_attach(&self, req: &AttachRequest) -> Result<AttachResponse, RequestError> {
        let streams = Streams {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            tty: req.tty,
        };
        // Upstream words this one differently from exec's.
        streams.validate(
            &req.container_id,
            "one of stdin, stdout, and stderr must be set",
        )?;
        let url = self.url("attach", CachedRequest::Attach(req.clone()))?;
        Ok(AttachResponse { url })
    }

    pub fn get_port_forward(
        &self,
        req: &PortForwardRequest,
    ) -> Result<PortForwardResponse, RequestError> {
        if req.pod_sandbox_id.is_empty() {
            return Err(RequestError::InvalidArgument(
                "missing required pod_sandbox_id",
            ));
        }
        let url = self.url("portforward", CachedRequest::PortForward(req.clone()))?;
        Ok(PortForwardResponse { url })
    }

    fn url(&self, method: &str, request: CachedRequest) -> Result<String, RequestError> {
        let address = self.inner.address.get().ok_or(RequestError::NotStarted)?;
        let token = self.inner.cache.insert(request)?;
        Ok(format!("http://{address}/{method}/{token}"))
    }
}

/// The streams an exec or attach request asks for, checked as upstream's server checks them.
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Streams {
    fn validate(&self, container_id: &str, none: &'static str) -> Result<(), RequestError> {
        if container_id.is_empty() {
            return Err(RequestError::InvalidArgument(
                "missing required container_id",
            ));
        }
        if self.tty && self.stderr {
            // A terminal has one output stream, so stderr cannot be told apart.
            return Err(RequestError::InvalidArgument(
                "tty and stderr cannot both be true",
            ));
        }
        if !self.stdin && !self.stdout && !self.stderr {
            return Err(RequestError::InvalidArgument(none));
        }
        Ok(())
    }
}
