//! Proxying an upgraded connection to the runtime's streaming server, as upstream's
//! UpgradeAwareHandler does for exec, attach and port-forward: the client's request (method and
//! headers, among them Upgrade, Connection, X-Stream-Protocol-Version and Sec-WebSocket-*) goes
//! to the streaming URL; when the runtime switches protocols, both upgraded connections are
//! spliced together, otherwise its answer goes back to the client as it is.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Whether the request asks for a protocol upgrade (SPDY or WebSocket).
pub(crate) fn is_upgrade(request: &Request) -> bool {
    let connection_upgrade = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && request.headers().contains_key(header::UPGRADE)
}

/// Upstream's responder writes proxy errors as 500s.
fn proxy_error(message: String) -> Response {
    tracing::warn!("error while proxying a stream: {message}");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{message}\n")).into_response()
}

pub(crate) async fn proxy(mut request: Request, url: &str) -> Response {
    if !is_upgrade(&request) {
        return proxy_error("Upgrade request required".into());
    }
    let target: Uri = match url.parse() {
        Ok(uri) => uri,
        Err(e) => return proxy_error(format!("invalid streaming URL {url:?}: {e}")),
    };
    let (Some("http"), Some(authority)) = (target.scheme_str(), target.authority().cloned()) else {
        return proxy_error(format!(
            "streaming URL {url:?}: only plain http streaming servers are supported"
        ));
    };
    let port = authority.port_u16().unwrap_or(80);
    let stream = match TcpStream::connect((authority.host(), port)).await {
        Ok(stream) => stream,
        Err(e) => return proxy_error(format!("error dialing backend: {e}")),
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(handshake) => handshake,
            Err(e) => return proxy_error(format!("error dialing backend: {e}")),
        };
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "streaming backend connection ended with an error");
        }
    });

    let client_upgrade = hyper::upgrade::on(&mut request);
    let mut backend_request = http::Request::builder()
        .method(request.method().clone())
        .uri(
            target
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
        )
        .body(Body::empty())
        .expect("a request built from a valid method and path");
    let headers = backend_request.headers_mut();
    for (name, value) in request.headers() {
        // The runtime has no use for the client's credentials.
        if name != header::AUTHORIZATION && name != header::HOST {
            headers.append(name, value.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        headers.insert(header::HOST, host);
    }

    let mut backend_response = match sender.send_request(backend_request).await {
        Ok(response) => response,
        Err(e) => return proxy_error(format!("error proxying to the streaming server: {e}")),
    };
    if backend_response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = backend_response.into_parts();
        return Response::from_parts(parts, Body::new(body));
    }
    let backend_upgrade = hyper::upgrade::on(&mut backend_response);
    tokio::spawn(async move {
        let (client, backend) = match tokio::join!(client_upgrade, backend_upgrade) {
            (Ok(client), Ok(backend)) => (client, backend),
            (client, backend) => {
                tracing::warn!(
                    client = ?client.err(),
                    backend = ?backend.err(),
                    "stream upgrade failed"
                );
                return;
            }
        };
        let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            tracing::debug!(%error, "stream ended with an error");
        }
    });
    let (parts, _) = backend_response.into_parts();
    Response::from_parts(parts, Body::empty())
}
