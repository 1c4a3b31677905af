//! Runtime endpoints: parsing `unix://` addresses and opening a gRPC channel on the socket.

use crate::CriError;
use hyper_util::rt::TokioIo;
use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The socket path of `unix:///path` or of a bare absolute path.
pub(super) fn socket_path(endpoint: &str) -> Result<PathBuf, CriError> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(CriError::Connect {
            endpoint: endpoint.to_string(),
            reason: "only unix sockets are supported: use unix:///absolute/path".to_string(),
        })
    }
}

/// Opens a channel on the endpoint's socket. The channel reconnects by itself later on, so a
/// runtime restart costs the calls made while it is down, not the client.
pub(super) async fn connect(endpoint: &str, timeout: Duration) -> Result<Channel, CriError> {
    let path = socket_path(endpoint)?;
    let failed = |reason: String| CriError::Connect {
        endpoint: endpoint.to_string(),
        reason,
    };
    // The URI is never dialled: the connector below opens the socket. "localhost" is the
    // :authority upstream sends as well.
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { UnixStream::connect(path).await.map(TokioIo::new) }
    });
    let channel = Endpoint::from_static("http://localhost").connect_timeout(timeout);
    match tokio::time::timeout(timeout, channel.connect_with_connector(connector)).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(err)) => Err(failed(error_chain(&err))),
        Err(_) => Err(failed(format!("no connection within {timeout:?}"))),
    }
}

/// The endpoint took the connection but did not answer the check call.
pub(super) fn unusable(endpoint: &str, err: &CriError) -> CriError {
    CriError::Connect {
        endpoint: endpoint.to_string(),
        reason: err.to_string(),
    }
}

/// tonic's transport error says only "transport error"; the cause (such as "No such file or
/// directory") is further down its source chain.
fn error_chain(err: &tonic::transport::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_urls_and_absolute_paths_name_a_socket() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path("/run/crio/crio.sock").unwrap(),
            PathBuf::from("/run/crio/crio.sock")
        );
    }

    #[test]
    fn other_endpoints_are_refused_by_name() {
        for endpoint in [
            "tcp://127.0.0.1:1234",
            "unix://relative.sock",
            "crio.sock",
            "",
        ] {
            match socket_path(endpoint) {
                Err(CriError::Connect {
                    endpoint: named, ..
                }) => assert_eq!(named, endpoint),
                other => panic!("{endpoint}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_connect_error_with_the_cause() {
        let dir = std::env::temp_dir().join(format!("kubelet-cri-missing-{}", std::process::id()));
        let endpoint = format!("unix://{}/none.sock", dir.display());
        let err = connect(&endpoint, Duration::from_secs(2))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&endpoint), "{text}");
        assert!(text.contains("No such file or directory"), "{text}");
    }
}
