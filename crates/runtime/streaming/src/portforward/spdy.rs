//! Port forwarding over SPDY: the client opens a data and an error stream per forwarded
//! connection, paired by their `requestID` header.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::forward_error;
use crate::backend::Backend;
use crate::spdy::pipe::pipe;
use crate::spdy::{Incoming, IncomingStream, SpdyStream};

#[derive(Default)]
struct Pair {
    /// The data stream's port, which upstream forwards to.
    port: u16,
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
}

pub struct Forwarder {
    pub sandbox_id: String,
    pub creation_timeout: Duration,
}

impl Forwarder {
    /// Serves the connection until the client closes it.
    pub async fn serve(self, mut incoming: Incoming, backend: Arc<dyn Backend>) {
        let this = Arc::new(self);
        let mut pairs: HashMap<String, Pair> = HashMap::new();
        let (expired_tx, mut expired_rx) = mpsc::unbounded_channel::<String>();
        loop {
            let next = tokio::select! {
                next = incoming.next() => match next {
                    Some(next) => next,
                    None => break,
                },
                Some(request_id) = expired_rx.recv() => {
                    if let Some(pair) = pairs.remove(&request_id) {
                        let msg = format!("(request={request_id}) timed out waiting for streams");
                        tracing::warn!("{msg}");
                        print_error(&pair, &msg).await;
                    }
                    continue;
                }
            };
            let Some((port, stream_type)) = check_headers(&next) else {
                continue;
            };
            let request_id = request_id(&next, &stream_type);
            let stream = match next.accept().await {
                Ok(stream) => stream,
                Err(_) => continue,
            };
            let pair = pairs.entry(request_id.clone()).or_insert_with(|| {
                let expired = expired_tx.clone();
                let id = request_id.clone();
                let timeout = this.creation_timeout;
                tokio::spawn(async move {
                    tokio::time::sleep(timeout).await;
                    let _ = expired.send(id);
                });
                Pair::default()
            });
            let slot = if stream_type == "data" {
                &mut pair.data
            } else {
                &mut pair.error
            };
            if slot.is_some() {
                let msg = format!(
                    "error processing stream for request {request_id}: {stream_type} stream already assigned"
                );
                tracing::warn!("{msg}");
                print_error(pair, &msg).await;
                continue;
            }
            *slot = Some(stream);
            if stream_type == "data" {
                pair.port = port;
            }
            if pair.data.is_some() && pair.error.is_some() {
                let Some(Pair {
                    port,
                    data: Some(data),
                    error: Some(error),
                }) = pairs.remove(&request_id)
                else {
                    continue;
                };
                tokio::spawn(this.clone().forward(port, data, error, backend.clone()));
            }
        }
    }

    async fn forward(
        self: Arc<Self>,
        port: u16,
        data: SpdyStream,
        error: SpdyStream,
        backend: Arc<dyn Backend>,
    ) {
        let (far, done) = pipe(data);
        let result = backend
            .port_forward(&self.sandbox_id, port, Box::new(far))
            .await;
        let _ = done.await;
        if let Err(e) = result {
            let msg = forward_error(port, &self.sandbox_id, &e);
            tracing::info!("{msg}");
            let _ = error.send(msg.as_bytes()).await;
        }
        let _ = error.finish().await;
    }
}

async fn print_error(pair: &Pair, msg: &str) {
    if let Some(error) = &pair.error {
        let _ = error.send(msg.as_bytes()).await;
    }
}

/// Upstream's checks on a new stream's headers; a failing stream is dropped, which resets it.
fn check_headers(stream: &IncomingStream) -> Option<(u16, String)> {
    let headers = stream.headers();
    let problem = match (headers.get("port"), headers.get("streamType")) {
        (None | Some(""), _) => "\"port\" header is required".to_owned(),
        (Some(port), stream_type) => match port.parse::<u16>() {
            Err(e) => format!("unable to parse {port:?} as a port: {e}"),
            Ok(0) => format!("port {port:?} must be > 0"),
            Ok(n) => match stream_type {
                None | Some("") => "\"streamType\" header is required".to_owned(),
                Some(t @ ("data" | "error")) => return Some((n, t.to_owned())),
                Some(t) => format!("invalid stream type {t:?}"),
            },
        },
    };
    tracing::warn!(
        stream = stream.id(),
        "port-forward stream rejected: {problem}"
    );
    None
}

/// The pair key: the `requestID` header, or for old clients without it a guess from the stream
/// id (their error and data streams were consecutive odd ids), as upstream does.
fn request_id(stream: &IncomingStream, stream_type: &str) -> String {
    match stream.headers().get("requestID") {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ if stream_type == "error" => stream.id().to_string(),
        _ => stream.id().saturating_sub(2).to_string(),
    }
}
