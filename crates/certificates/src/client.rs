//! The API client the kubelet builds from a kubeconfig: kube's own stack (base URI, bearer
//! or token-file auth, extra headers, retries, timeouts) over a rustls connector whose
//! client certificate is resolved at each handshake. With a [`CurrentCertificate`], a
//! rotated certificate is used without rebuilding the client: like client-go's rotating
//! transport, every open connection is closed when a new certificate is put in use, so the
//! next request dials again and presents it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{ClientBuilder, ConfigExt};
use tower::retry::RetryLayer;
use tower::util::BoxService;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

use crate::CurrentCertificate;

/// The service under a [`kube::Client`] built here; callers may add layers (rate limits).
pub type ApiService =
    BoxService<http::Request<kube::client::Body>, http::Response<hyper::body::Incoming>, BoxError>;

/// A client builder over `config`. With `certificate`, TLS handshakes present the current
/// certificate (and connections are redialled when it changes) instead of the one
/// `config` names.
pub fn client_builder(
    config: kube::Config,
    certificate: Option<CurrentCertificate>,
) -> Result<ClientBuilder<ApiService>, kube::Error> {
    let mut tls = config.rustls_client_config()?;
    if let Some(current) = &certificate {
        tls.client_auth_cert_resolver = current.client_resolver();
        // A resumed TLS session keeps the identity of the handshake that made it; client-go
        // keeps no session cache either.
        tls.resumption = rustls::client::Resumption::disabled();
    }
    let mut https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name.clone().try_into().map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        https = https.with_server_name_resolver(FixedServerNameResolver::new(name));
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let connector = CloseOnRotation {
        inner: https.enable_http1().wrap_connector(http),
        certificate,
    };
    let mut connector = TimeoutConnector::new(connector);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(connector);

    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(client);
    Ok(ClientBuilder::new(
        service.boxed(),
        config.default_namespace.clone(),
    ))
}

/// Wraps each connection so that it ends when a new certificate is put in use.
#[derive(Clone)]
struct CloseOnRotation<C> {
    inner: C,
    certificate: Option<CurrentCertificate>,
}

impl<C> Service<http::Uri> for CloseOnRotation<C>
where
    C: Service<http::Uri>,
    C::Future: Send + 'static,
{
    type Response = RotatingStream<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        // Subscribed before dialling: a rotation during the handshake also ends it.
        let rotated = self.certificate.as_ref().map(|c| {
            let mut changes = c.subscribe();
            changes.mark_unchanged();
            Box::pin(async move {
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }) as Pin<Box<dyn Future<Output = ()> + Send>>
        });
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            Ok(RotatingStream {
                inner: connecting.await?,
                rotated,
                closed: false,
            })
        })
    }
}

struct RotatingStream<S> {
    inner: S,
    /// Ready once a new certificate is in use; None without a managed certificate.
    rotated: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    closed: bool,
}

impl<S> RotatingStream<S> {
    fn is_closed(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed
            && let Some(rotated) = &mut self.rotated
            && rotated.as_mut().poll(cx).is_ready()
        {
            tracing::info!("client certificate rotated, closing the connection");
            self.closed = true;
        }
        self.closed
    }
}

fn rotated_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed: the client certificate was rotated",
    )
}

impl<S: Read + Unpin> Read for RotatingStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_closed(cx) {
            // End of stream: an idle pooled connection is dropped, a pending response fails.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: Write + Unpin> Write for RotatingStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_closed(cx) {
            return Poll::Ready(Err(rotated_error()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_closed(cx) {
            return Poll::Ready(Err(rotated_error()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }
}

impl<S: Connection> Connection for RotatingStream<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}
