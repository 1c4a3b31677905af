//! The kubelet's HTTP endpoints: the healthz port, and the read-only port (upstream
//! pkg/kubelet/server), which serves what needs no authentication.

pub mod healthz;
pub mod read_only;
pub mod view;

use std::net::SocketAddr;

/// Binds `addr` and serves `router` on it in the background; the error names the endpoint and
/// the address.
pub async fn serve(
    what: &str,
    addr: SocketAddr,
    router: axum::Router,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on the {what} address {addr}: {e}"))?;
    let what = what.to_string();
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the {what} server stopped: {e}");
        }
    }))
}
