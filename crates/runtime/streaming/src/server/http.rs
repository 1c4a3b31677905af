//! HTTP/1.1 serving: the token routes, protocol negotiation, and the SPDY and WebSocket
//! upgrades that hand the connection to a session.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming as Body;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::PortForwardRequest;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use super::Inner;
use crate::portforward::{self, parse_ports};
use crate::remotecommand::{self, Command, StreamOptions, Version};
use crate::spdy::session::{self, Role, SessionConfig};
use crate::tokens::CachedRequest;
use crate::websocket::{self, Socket, negotiate, tunnel};

const STREAM_PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";
const ACCEPTED_PROTOCOLS_HEADER: &str = "X-Accepted-Stream-Protocol-Versions";
const WS_PROTOCOL_HEADER: &str = "Sec-WebSocket-Protocol";
/// Largest WebSocket message we take from a client.
const MAX_WS_MESSAGE: usize = 16 << 20;

type Reply = Response<Full<Bytes>>;

pub(super) async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "streaming server accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(route(inner, req)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(error = %e, "streaming HTTP connection ended with an error");
            }
        });
    }
}

fn route(inner: Arc<Inner>, req: Request<Body>) -> Reply {
    let path = req.uri().path().to_owned();
    let Some((kind, token)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return not_found();
    };
    if !matches!(kind, "exec" | "attach" | "portforward") || token.is_empty() || token.contains('/')
    {
        return not_found();
    }
    if req.method() != Method::GET && req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    }
    let Some(cached) = inner.cache.consume(token) else {
        return not_found();
    };
    match (kind, cached) {
        ("exec", CachedRequest::Exec(r)) => {
            let options = StreamOptions {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                tty: r.tty,
            };
            remote_command(
                inner,
                req,
                Command::Exec {
                    container_id: r.container_id,
                    cmd: r.cmd,
                },
                options,
            )
        }
        ("attach", CachedRequest::Attach(r)) => {
            let options = StreamOptions {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                tty: r.tty,
            };
            remote_command(
                inner,
                req,
                Command::Attach {
                    container_id: r.container_id,
                },
                options,
            )
        }
        ("portforward", CachedRequest::PortForward(r)) => port_forward(inner, req, r),
        _ => not_found(),
    }
}

fn remote_command(
    inner: Arc<Inner>,
    req: Request<Body>,
    command: Command,
    options: StreamOptions,
) -> Reply {
    let backend = inner.backend.clone();
    let idle_timeout = inner.config.idle_timeout();
    if is_websocket(req.headers()) {
        let offered = ws_protocols(req.headers());
        let Some(protocol) = negotiate(&offered, &websocket::exec::PROTOCOLS) else {
            return ws_unsupported(&offered, &websocket::exec::PROTOCOLS);
        };
        let session = websocket::exec::Session {
            protocol,
            options,
            command,
            idle_timeout,
        };
        return upgrade_websocket(req, protocol, move |socket| session.serve(socket, backend));
    }
    let protocol = match spdy_handshake(req.headers(), &remotecommand::SPDY_PROTOCOLS) {
        Ok(protocol) => protocol,
        Err(reply) => return *reply,
    };
    let version = Version::from_spdy(protocol).unwrap_or(Version::V1);
    let session = remotecommand::spdy::Session {
        version,
        options,
        command,
        creation_timeout: inner.config.stream_creation_timeout,
    };
    upgrade_spdy(req, protocol, idle_timeout, move |conn, incoming| {
        session.serve(conn, incoming, backend)
    })
}

fn port_forward(inner: Arc<Inner>, req: Request<Body>, cri: PortForwardRequest) -> Reply {
    let backend = inner.backend.clone();
    let idle_timeout = inner.config.idle_timeout();
    let creation_timeout = inner.config.stream_creation_timeout;
    let sandbox_id = cri.pod_sandbox_id;
    if is_websocket(req.headers()) {
        let offered = ws_protocols(req.headers());
        if offered.contains(&tunnel::PROTOCOL) {
            let forwarder = portforward::spdy::Forwarder {
                sandbox_id,
                creation_timeout,
            };
            let config = SessionConfig {
                idle_timeout,
                ..SessionConfig::default()
            };
            return upgrade_websocket(req, tunnel::PROTOCOL, move |socket| async move {
                let (_conn, incoming) =
                    session::start(tunnel::TunnelIo::new(socket), Role::Server, config);
                forwarder.serve(incoming, backend).await;
            });
        }
        let ports = match query_ports(req.uri().query(), &cri.port) {
            Ok(ports) => ports,
            Err(msg) => return text(StatusCode::BAD_REQUEST, &msg),
        };
        let Some(protocol) = negotiate(&offered, &websocket::portforward::PROTOCOLS) else {
            return ws_unsupported(&offered, &websocket::portforward::PROTOCOLS);
        };
        let forwarder = websocket::portforward::Forwarder {
            protocol,
            sandbox_id,
            ports,
            idle_timeout,
        };
        return upgrade_websocket(req, protocol, move |socket| {
            forwarder.serve(socket, backend)
        });
    }
    let protocol = match spdy_handshake(req.headers(), &[portforward::SPDY_PROTOCOL]) {
        Ok(protocol) => protocol,
        Err(reply) => return *reply,
    };
    let forwarder = portforward::spdy::Forwarder {
        sandbox_id,
        creation_timeout,
    };
    upgrade_spdy(req, protocol, idle_timeout, move |_conn, incoming| {
        forwarder.serve(incoming, backend)
    })
}

/// The ports of a WebSocket port-forward: the `port` query parameters, else the CRI request's.
fn query_ports(query: Option<&str>, cri_ports: &[i32]) -> Result<Vec<u16>, String> {
    let values: Vec<String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "port")
        .map(|(_, v)| v.into_owned())
        .collect();
    if !values.is_empty() {
        return parse_ports(values.iter().map(String::as_str));
    }
    if cri_ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    cri_ports
        .iter()
        .map(|&p| {
            u16::try_from(p)
                .ok()
                .filter(|&p| p > 0)
                .ok_or(format!("invalid port {p}"))
        })
        .collect()
}

/// Upstream httpstream.Handshake: the first protocol the client lists that we serve.
fn spdy_handshake(
    headers: &HeaderMap,
    supported: &[&'static str],
) -> Result<&'static str, Box<Reply>> {
    let offered: Vec<&str> = headers
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            &format!("unable to upgrade: {STREAM_PROTOCOL_HEADER} is required"),
        )));
    }
    let chosen = offered
        .iter()
        .find_map(|o| supported.iter().find(|s| *s == o).copied());
    let Some(chosen) = chosen else {
        let msg = format!(
            "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
            offered.join(" "),
            supported.join(" ")
        );
        let mut reply = text(StatusCode::FORBIDDEN, &msg);
        for protocol in supported {
            reply.headers_mut().append(
                ACCEPTED_PROTOCOLS_HEADER,
                HeaderValue::from_static(protocol),
            );
        }
        return Err(Box::new(reply));
    };
    let upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !connection_upgrade(headers) || !upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        )));
    }
    Ok(chosen)
}

fn upgrade_spdy<F, Fut>(
    mut req: Request<Body>,
    protocol: &'static str,
    idle_timeout: Option<Duration>,
    serve: F,
) -> Reply
where
    F: FnOnce(session::Connection, session::Incoming) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = SessionConfig {
                    idle_timeout,
                    ..SessionConfig::default()
                };
                let (conn, incoming) = session::start(TokioIo::new(upgraded), Role::Server, config);
                serve(conn, incoming).await;
            }
            Err(e) => tracing::debug!(error = %e, "SPDY upgrade failed"),
        }
    });
    let mut reply = Response::new(Full::default());
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = reply.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    headers.insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    reply
}

fn upgrade_websocket<F, Fut>(mut req: Request<Body>, protocol: &'static str, serve: F) -> Reply
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = req
        .headers()
        .get("Sec-WebSocket-Key")
        .map(|k| derive_accept_key(k.as_bytes()));
    let version_ok = req
        .headers()
        .get("Sec-WebSocket-Version")
        .is_some_and(|v| v == "13");
    let (Some(accept), true) = (key, version_ok) else {
        return text(
            StatusCode::BAD_REQUEST,
            "not a WebSocket handshake: Sec-WebSocket-Key and version 13 are required",
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default().max_message_size(Some(MAX_WS_MESSAGE));
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    WsRole::Server,
                    Some(config),
                )
                .await;
                serve(socket).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut reply = Response::new(Full::default());
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = reply.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert("Sec-WebSocket-Accept", accept);
    }
    if !protocol.is_empty() {
        headers.insert(WS_PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    }
    reply
}

fn connection_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

fn is_websocket(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    upgrade.eq_ignore_ascii_case("websocket") && connection_upgrade(headers)
}

fn ws_protocols(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(WS_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn ws_unsupported(offered: &[&str], supported: &[&str]) -> Reply {
    let msg = format!(
        "requested protocol(s) are not supported: [{}]; supports [{}]",
        offered.join(" "),
        supported.join(" ")
    );
    text(StatusCode::FORBIDDEN, &msg)
}

fn not_found() -> Reply {
    text(StatusCode::NOT_FOUND, "404 page not found")
}

/// A plain-text reply, as Go's http.Error writes it.
fn text(status: StatusCode, msg: &str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(format!("{msg}\n"))));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply.headers_mut().insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    reply
}
