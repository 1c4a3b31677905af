//! The TLS accept loop: each connection is handshaken on its own task, its client certificate
//! turned into the connection's user, and served by hyper (HTTP/1.1 with upgrades, or HTTP/2).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::{Peer, user_of_certificate};
use crate::error::ServerError;

pub(crate) async fn start(
    address: IpAddr,
    port: u16,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let address = SocketAddr::new(address, port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind { address, source })?;
    tracing::info!(%address, "kubelet server listening");
    let acceptor = TlsAcceptor::from(tls);
    Ok(tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "kubelet server: accept failed");
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(stream).await {
                    Ok(tls) => tls,
                    Err(error) => {
                        tracing::debug!(%remote, %error, "kubelet server: TLS handshake failed");
                        return;
                    }
                };
                let user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|cert| user_of_certificate(cert));
                let app = app.layer(axum::Extension(Peer(user)));
                let service = TowerToHyperService::new(app);
                if let Err(error) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%remote, %error, "kubelet server: connection ended with an error");
                }
            });
        }
    }))
}
