//! Kubernetes streaming over WebSocket (upstream wsstream): each message starts with a channel
//! byte (an ASCII digit in the base64 protocols, whose payloads are base64), and the channels
//! stand for the standard streams or the forwarded ports.

pub mod exec;
pub mod portforward;
pub mod tunnel;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// v5's channel for "the client closed this stream" (its payload names the channel).
const CLOSE_CHANNEL: u8 = 255;
const PIPE_BUFFER: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Binary,
    Base64,
}

/// Picks the first protocol the client offered that `supported` lists, as upstream's handshake
/// does. `""` in `supported` accepts a client that offered none.
pub fn negotiate<'a>(offered: &[&str], supported: &[&'a str]) -> Option<&'a str> {
    if offered.is_empty() {
        return supported.iter().find(|p| p.is_empty()).copied();
    }
    offered
        .iter()
        .find_map(|o| supported.iter().find(|s| *s == o).copied())
}

enum Outbound {
    Data(u8, Bytes),
    Close,
}

/// Sends channel messages; cheap to clone.
#[derive(Clone)]
pub struct ChannelSender {
    tx: mpsc::Sender<Outbound>,
}

impl ChannelSender {
    pub async fn send(&self, channel: u8, data: &[u8]) -> bool {
        self.tx
            .send(Outbound::Data(channel, Bytes::copy_from_slice(data)))
            .await
            .is_ok()
    }

    /// Sends a close frame after everything queued.
    pub async fn close(&self) {
        let _ = self.tx.send(Outbound::Close).await;
    }

    /// A pipe whose far end's writes become messages on `channel`; the handle completes when
    /// the far end is closed and all it wrote is queued.
    pub fn output(&self, channel: u8) -> (DuplexStream, JoinHandle<()>) {
        let (far, near) = tokio::io::duplex(PIPE_BUFFER);
        (far, self.pump(near, channel))
    }

    /// Sends what `near` yields on `channel` until it ends.
    pub fn pump<R>(&self, near: R, channel: u8) -> JoinHandle<()>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        tokio::spawn(pump_out(near, self.clone(), channel))
    }
}

async fn pump_out<R: tokio::io::AsyncRead + Unpin>(
    mut near: R,
    sender: ChannelSender,
    channel: u8,
) {
    let mut buf = vec![0; 32 << 10];
    while let Ok(n) = near.read(&mut buf).await {
        if n == 0 || !sender.send(channel, &buf[..n]).await {
            return;
        }
    }
}

/// Where the client's messages go: a pipe per readable channel.
#[derive(Default)]
pub struct Inputs {
    pipes: HashMap<u8, WriteHalf<DuplexStream>>,
}

impl Inputs {
    /// A pipe whose far end reads what the client sends on `channel`.
    pub fn input(&mut self, channel: u8) -> DuplexStream {
        let (far, near) = tokio::io::duplex(PIPE_BUFFER);
        let (_, write) = tokio::io::split(near);
        self.pipes.insert(channel, write);
        far
    }

    /// A pipe both ways: client messages on `channel` are read from its far end; what the far
    /// end writes comes out of the returned near half, for `ChannelSender::pump`.
    pub fn duplex(&mut self, channel: u8) -> (DuplexStream, ReadHalf<DuplexStream>) {
        let (far, near) = tokio::io::duplex(PIPE_BUFFER);
        let (read, write) = tokio::io::split(near);
        self.pipes.insert(channel, write);
        (far, read)
    }
}

/// Runs the socket: a writer task for `ChannelSender` and a reader task that feeds `inputs`.
/// The reader's handle completes when the client is gone (or idle past `idle_timeout`).
pub fn run(
    socket: Socket,
    codec: Codec,
    v5: bool,
    inputs: Inputs,
    idle_timeout: Option<Duration>,
) -> (ChannelSender, JoinHandle<()>) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outbound>(64);
    let activity = Arc::new(Mutex::new(Instant::now()));
    let written = activity.clone();
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let message = match item {
                Outbound::Data(channel, data) => encode(codec, channel, &data),
                Outbound::Close => {
                    // A normal-closure code, as upstream's server sends: gorilla-based
                    // clients (client-go, kubectl, crictl) report a close without one (1005)
                    // as an error instead of the end of the session.
                    let frame = CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = sink.close().await;
                    return;
                }
            };
            if sink.send(message).await.is_err() {
                return;
            }
            *written.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    });
    let reader = tokio::spawn(async move {
        let mut inputs = inputs;
        loop {
            let next = match idle_timeout {
                None => stream.next().await,
                Some(timeout) => match tokio::time::timeout(timeout, stream.next()).await {
                    Ok(next) => next,
                    Err(_)
                        if activity.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
                            < timeout =>
                    {
                        continue;
                    }
                    Err(_) => {
                        tracing::info!("closing idle WebSocket stream connection");
                        return;
                    }
                },
            };
            let data = match next {
                Some(Ok(Message::Binary(data))) => data,
                Some(Ok(Message::Text(text))) => Bytes::from(text.as_str().to_owned()),
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "WebSocket read failed");
                    return;
                }
            };
            let Some((channel, payload)) = decode(codec, &data) else {
                continue;
            };
            if v5 && channel == CLOSE_CHANNEL {
                if let Some(mut pipe) = payload
                    .first()
                    .and_then(|closed| inputs.pipes.remove(closed))
                {
                    let _ = pipe.shutdown().await;
                }
                continue;
            }
            if let Some(pipe) = inputs.pipes.get_mut(&channel)
                && pipe.write_all(&payload).await.is_err()
            {
                inputs.pipes.remove(&channel);
            }
        }
    });
    (ChannelSender { tx }, reader)
}

fn encode(codec: Codec, channel: u8, data: &[u8]) -> Message {
    match codec {
        Codec::Binary => {
            let mut frame = Vec::with_capacity(data.len() + 1);
            frame.push(channel);
            frame.extend_from_slice(data);
            Message::Binary(frame.into())
        }
        Codec::Base64 => {
            let mut text = String::with_capacity(data.len() * 4 / 3 + 5);
            text.push(char::from(b'0' + channel));
            BASE64.encode_string(data, &mut text);
            Message::Text(text.into())
        }
    }
}

fn decode(codec: Codec, data: &[u8]) -> Option<(u8, Vec<u8>)> {
    let (&first, rest) = data.split_first()?;
    match codec {
        Codec::Binary => Some((first, rest.to_vec())),
        Codec::Base64 => match BASE64.decode(rest) {
            Ok(payload) => Some((first.wrapping_sub(b'0'), payload)),
            Err(e) => {
                tracing::debug!(error = %e, "dropping a message that is not base64");
                None
            }
        },
    }
}
