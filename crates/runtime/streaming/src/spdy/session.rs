//! A SPDY/3.1 connection: a reader task that decodes the peer's frames and routes them to
//! streams, a writer task that owns the socket's write half and the outbound zlib context, and
//! handles for the streams on top.
//!
//! Flow control: we advertise the SPDY/3.1 default window (64 KiB per stream and for the
//! connection) and reopen it with WINDOW_UPDATE as the application consumes data. Our own sends
//! obey the peer's windows only once the peer shows it keeps them, by sending a WINDOW_UPDATE or
//! a SETTINGS frame: moby/spdystream, the SPDY of client-go, kubectl and the API server, never
//! sends either and ignores ours, so holding it to a window it never reopens would stall every
//! stream after 64 KiB. For the same reason a peer that overruns our window is not an error;
//! its stream just stops being read (TCP backpressure) until the application catches up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::frame::{
    Frame, FrameDecoder, FrameEncoder, FrameError, Limits, SETTINGS_INITIAL_WINDOW_SIZE, goaway,
    rst,
};
use super::headers::Headers;

/// SPDY/3.1's initial window, per stream and for the connection.
pub const DEFAULT_WINDOW: u32 = 64 << 10;
/// Largest data frame we send: small enough to interleave streams, large enough to be cheap.
const MAX_SEND_CHUNK: usize = 32 << 10;
const MAX_WINDOW: i64 = i32::MAX as i64;
/// Frames queued for the writer before senders wait.
const OUTBOUND_QUEUE: usize = 256;
/// New streams queued for the application before the reader waits.
const INCOMING_QUEUE: usize = 64;
/// How long the connection stays readable after we said GOAWAY, for the peer to finish.
const LINGER: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub limits: Limits,
    /// Closes the connection after this long without a frame in either direction.
    pub idle_timeout: Option<Duration>,
    /// Streams open at once; the peer's further SYN_STREAMs are refused.
    pub max_streams: usize,
    /// Obey the peer's windows from the start, for a peer known to keep SPDY/3.1 flow control;
    /// otherwise only from its first WINDOW_UPDATE or SETTINGS.
    pub peer_flow_control: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            idle_timeout: None,
            max_streams: 1024,
            peer_flow_control: false,
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    #[error("connection closed")]
    Closed,
    #[error("stream {0} was reset")]
    Reset(u32),
    #[error("stream {0} is already closed for sending")]
    AlreadyFinished(u32),
    #[error("peer refused stream {0} with status {1}")]
    Refused(u32, u32),
    #[error("no stream ids left")]
    StreamIdsExhausted,
}

/// Why the reader stopped.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
}

/// Starts a session on `io`. The tasks run until the connection ends; `Incoming` yields the
/// streams the peer opens.
pub fn start<T>(io: T, role: Role, config: SessionConfig) -> (Connection, Incoming)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
    let (shutdown, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        role,
        config: config.clone(),
        state: Mutex::new(State {
            streams: HashMap::new(),
            next_local_id: if role == Role::Client { 1 } else { 2 },
            last_remote_id: 0,
            peer_flow_control: config.peer_flow_control,
            peer_initial_window: i64::from(DEFAULT_WINDOW),
            conn_send_window: i64::from(DEFAULT_WINDOW),
            conn_recv_credit: 0,
            going_away: false,
            closed: false,
            last_activity: Instant::now(),
        }),
        out: out_tx,
        window_changed: Notify::new(),
        open_lock: tokio::sync::Mutex::new(()),
        shutdown,
    });
    let conn = Connection {
        shared: shared.clone(),
    };
    tokio::spawn(write_loop(shared.clone(), writer, out_rx));
    tokio::spawn(read_loop(conn.clone(), reader, incoming_tx));
    if let Some(timeout) = config.idle_timeout {
        tokio::spawn(idle_watch(shared, timeout));
    }
    (conn, Incoming { rx: incoming_rx })
}

struct Shared {
    role: Role,
    config: SessionConfig,
    state: Mutex<State>,
    out: mpsc::Sender<Outgoing>,
    /// Woken when a send window grows or the connection ends.
    window_changed: Notify,
    /// Keeps stream ids in increasing order on the wire.
    open_lock: tokio::sync::Mutex<()>,
    shutdown: watch::Sender<bool>,
}

struct State {
    streams: HashMap<u32, StreamState>,
    next_local_id: u32,
    last_remote_id: u32,
    peer_flow_control: bool,
    peer_initial_window: i64,
    conn_send_window: i64,
    conn_recv_credit: u32,
    going_away: bool,
    closed: bool,
    last_activity: Instant,
}

struct StreamState {
    recv: VecDeque<Bytes>,
    recv_bytes: usize,
    /// The application no longer reads: data is dropped (and its window reopened).
    recv_dropped: bool,
    remote_closed: bool,
    local_closed: bool,
    send_window: i64,
    recv_credit: u32,
    data_ready: Arc<Notify>,
    space_ready: Arc<Notify>,
    reply: Option<oneshot::Sender<Result<(), u32>>>,
}

impl StreamState {
    fn new(send_window: i64) -> Self {
        Self {
            recv: VecDeque::new(),
            recv_bytes: 0,
            recv_dropped: false,
            remote_closed: false,
            local_closed: false,
            send_window,
            recv_credit: 0,
            data_ready: Arc::new(Notify::new()),
            space_ready: Arc::new(Notify::new()),
            reply: None,
        }
    }
}

enum Outgoing {
    Frame(Frame),
    /// Flush and shut the write half: nothing more will be sent. The sender, if any, learns
    /// when that is done.
    Close(Option<oneshot::Sender<()>>),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remote_initiated(&self, id: u32) -> bool {
        // Clients open odd streams, servers even ones.
        (id % 2 == 1) == (self.role == Role::Server)
    }

    async fn send(&self, frame: Frame) -> Result<(), SessionError> {
        self.out
            .send(Outgoing::Frame(frame))
            .await
            .map_err(|_| SessionError::Closed)
    }

    /// Queues a frame from a context that cannot wait (drop handlers).
    fn send_now(&self, frame: Frame) {
        if self.out.try_send(Outgoing::Frame(frame)).is_err() {
            tracing::debug!("SPDY outbound queue full or closed; frame dropped");
        }
    }

    fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

    fn trigger_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Ends every stream after the connection is gone; data already received stays readable.
    fn mark_closed(&self) {
        let mut state = self.lock();
        state.closed = true;
        for stream in state.streams.values_mut() {
            stream.remote_closed = true;
            stream.local_closed = true;
            stream.data_ready.notify_one();
            stream.space_ready.notify_one();
            if let Some(reply) = stream.reply.take() {
                let _ = reply.send(Err(rst::CANCEL));
            }
        }
        drop(state);
        self.window_changed.notify_waiters();
    }
}

/// A handle on the connection; cheap to clone.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl Connection {
    /// Opens a stream (the client side of SPDY: our tests and tunnels use it) and waits for
    /// the peer's SYN_REPLY.
    pub async fn open(&self, headers: Headers, fin: bool) -> Result<SpdyStream, SessionError> {
        let guard = self.shared.open_lock.lock().await;
        let (reply_tx, reply_rx) = oneshot::channel();
        let (id, notify) = {
            let mut state = self.shared.lock();
            if state.closed || state.going_away {
                return Err(SessionError::Closed);
            }
            let id = state.next_local_id;
            if id > 0x7fff_ffff {
                return Err(SessionError::StreamIdsExhausted);
            }
            state.next_local_id += 2;
            let mut stream = StreamState::new(state.peer_initial_window);
            stream.local_closed = fin;
            stream.reply = Some(reply_tx);
            let notify = stream.data_ready.clone();
            state.streams.insert(id, stream);
            (id, notify)
        };
        let syn = Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin,
            unidirectional: false,
            headers: headers.clone(),
        };
        self.shared.send(syn).await?;
        drop(guard);
        match reply_rx.await {
            Ok(Ok(())) => Ok(SpdyStream {
                conn: self.clone(),
                id,
                headers,
                data_ready: notify,
            }),
            Ok(Err(status)) => Err(SessionError::Refused(id, status)),
            Err(_) => Err(SessionError::Closed),
        }
    }

    /// Says GOAWAY after everything already queued, closes our write half, and lets the peer
    /// finish reading for a moment before the connection is dropped.
    pub async fn close(&self) {
        let last = {
            let mut state = self.shared.lock();
            state.going_away = true;
            state.last_remote_id
        };
        let _ = self
            .shared
            .send(Frame::GoAway {
                last_good_stream_id: last,
                status: goaway::OK,
            })
            .await;
        let _ = self.shared.out.send(Outgoing::Close(None)).await;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LINGER).await;
            shared.trigger_shutdown();
        });
    }

    /// Resolves when the connection has ended.
    pub async fn closed(&self) {
        let mut rx = self.shared.shutdown.subscribe();
        let _ = rx.wait_for(|down| *down).await;
    }

    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

/// The streams the peer opens, in order.
pub struct Incoming {
    rx: mpsc::Receiver<IncomingStream>,
}

impl Incoming {
    /// The next stream, or None once the connection has ended.
    pub async fn next(&mut self) -> Option<IncomingStream> {
        self.rx.recv().await
    }
}

/// A stream the peer opened, not yet answered.
pub struct IncomingStream {
    conn: Connection,
    id: u32,
    headers: Headers,
    answered: bool,
}

impl IncomingStream {
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Sends SYN_REPLY and hands over the stream.
    pub async fn accept(mut self) -> Result<SpdyStream, SessionError> {
        self.answered = true;
        let data_ready = {
            let state = self.conn.shared.lock();
            match state.streams.get(&self.id) {
                Some(s) => s.data_ready.clone(),
                None => return Err(SessionError::Reset(self.id)),
            }
        };
        let reply = Frame::SynReply {
            stream_id: self.id,
            fin: false,
            headers: Headers::new(),
        };
        self.conn.shared.send(reply).await?;
        Ok(SpdyStream {
            conn: self.conn.clone(),
            id: self.id,
            headers: std::mem::take(&mut self.headers),
            data_ready,
        })
    }

    /// Refuses the stream with RST_STREAM.
    pub async fn reject(mut self, status: u32) {
        self.answered = true;
        self.conn.shared.lock().streams.remove(&self.id);
        let _ = self
            .conn
            .shared
            .send(Frame::RstStream {
                stream_id: self.id,
                status,
            })
            .await;
    }
}

impl Drop for IncomingStream {
    fn drop(&mut self) {
        if !self.answered {
            self.conn.shared.lock().streams.remove(&self.id);
            self.conn.shared.send_now(Frame::RstStream {
                stream_id: self.id,
                status: rst::REFUSED_STREAM,
            });
        }
    }
}

/// One open stream. Reading and writing may happen from different tasks (`&self` methods).
pub struct SpdyStream {
    conn: Connection,
    id: u32,
    headers: Headers,
    data_ready: Arc<Notify>,
}

impl SpdyStream {
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The next chunk from the peer, or None after its FIN, a reset or the connection's end.
    pub async fn recv(&self) -> Option<Bytes> {
        loop {
            let notified = self.data_ready.notified();
            let taken = {
                let mut state = self.conn.shared.lock();
                let stream = state.streams.get_mut(&self.id)?;
                match stream.recv.pop_front() {
                    Some(chunk) => {
                        stream.recv_bytes -= chunk.len();
                        stream.space_ready.notify_one();
                        let updates = credit(&mut state, self.id, chunk.len());
                        Some((chunk, updates))
                    }
                    None if stream.remote_closed => return None,
                    None => None,
                }
            };
            if let Some((chunk, updates)) = taken {
                for update in updates {
                    let _ = self.conn.shared.send(update).await;
                }
                return Some(chunk);
            }
            notified.await;
        }
    }

    /// Stops reading: what the peer still sends is dropped without stalling the connection.
    pub fn stop_receiving(&self) {
        let mut state = self.conn.shared.lock();
        let Some(stream) = state.streams.get_mut(&self.id) else {
            return;
        };
        stream.recv_dropped = true;
        let dropped = stream.recv_bytes;
        stream.recv.clear();
        stream.recv_bytes = 0;
        stream.space_ready.notify_one();
        let updates = credit(&mut state, self.id, dropped);
        drop(state);
        for update in updates {
            self.conn.shared.send_now(update);
        }
    }

    /// Sends `data`, in frames no larger than our chunk size and, once the peer keeps flow
    /// control, within its windows.
    pub async fn send(&self, mut data: &[u8]) -> Result<(), SessionError> {
        let shared = &self.conn.shared;
        while !data.is_empty() {
            let window_changed = shared.window_changed.notified();
            tokio::pin!(window_changed);
            window_changed.as_mut().enable();
            let allowed = {
                let mut state = shared.lock();
                if state.closed {
                    return Err(SessionError::Closed);
                }
                let enforce = state.peer_flow_control;
                let conn_window = state.conn_send_window;
                let Some(stream) = state.streams.get_mut(&self.id) else {
                    return Err(SessionError::Reset(self.id));
                };
                if stream.local_closed {
                    return Err(SessionError::AlreadyFinished(self.id));
                }
                let mut allowed = data.len().min(MAX_SEND_CHUNK);
                if enforce {
                    allowed = allowed.min(stream.send_window.min(conn_window).max(0) as usize);
                }
                if allowed > 0 && enforce {
                    stream.send_window -= allowed as i64;
                    state.conn_send_window -= allowed as i64;
                }
                allowed
            };
            if allowed == 0 {
                window_changed.await;
                continue;
            }
            let (chunk, rest) = data.split_at(allowed);
            shared
                .send(Frame::Data {
                    stream_id: self.id,
                    fin: false,
                    data: Bytes::copy_from_slice(chunk),
                })
                .await?;
            data = rest;
        }
        Ok(())
    }

    /// Half-closes our side with an empty FIN data frame.
    pub async fn finish(&self) -> Result<(), SessionError> {
        {
            let mut state = self.conn.shared.lock();
            let Some(stream) = state.streams.get_mut(&self.id) else {
                return Err(SessionError::Reset(self.id));
            };
            if stream.local_closed {
                return Ok(());
            }
            stream.local_closed = true;
        }
        self.conn
            .shared
            .send(Frame::Data {
                stream_id: self.id,
                fin: true,
                data: Bytes::new(),
            })
            .await
    }

    /// Ends both directions with RST_STREAM.
    pub async fn reset(&self, status: u32) {
        let known = self.conn.shared.lock().streams.remove(&self.id).is_some();
        if known {
            let _ = self
                .conn
                .shared
                .send(Frame::RstStream {
                    stream_id: self.id,
                    status,
                })
                .await;
        }
    }
}

impl Drop for SpdyStream {
    fn drop(&mut self) {
        let removed = self.conn.shared.lock().streams.remove(&self.id);
        // A stream dropped before we finished it would leave the peer waiting for our FIN.
        if removed.is_some_and(|s| !s.local_closed) {
            self.conn.shared.send_now(Frame::RstStream {
                stream_id: self.id,
                status: rst::CANCEL,
            });
        }
    }
}

/// Records `len` consumed bytes and returns the WINDOW_UPDATEs due: we reopen a window once
/// half of it has been consumed, so a compliant peer never waits on us for long.
fn credit(state: &mut State, id: u32, len: usize) -> Vec<Frame> {
    let len = len as u32;
    let mut updates = Vec::new();
    if let Some(stream) = state.streams.get_mut(&id) {
        stream.recv_credit += len;
        if stream.recv_credit >= DEFAULT_WINDOW / 2 && !stream.remote_closed {
            updates.push(Frame::WindowUpdate {
                stream_id: id,
                delta: stream.recv_credit,
            });
            stream.recv_credit = 0;
        }
    }
    state.conn_recv_credit += len;
    if state.conn_recv_credit >= DEFAULT_WINDOW / 2 {
        updates.push(Frame::WindowUpdate {
            stream_id: 0,
            delta: state.conn_recv_credit,
        });
        state.conn_recv_credit = 0;
    }
    updates
}

async fn write_loop<W: AsyncWrite>(
    shared: Arc<Shared>,
    writer: W,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let mut encoder = FrameEncoder::new();
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut writer = std::pin::pin!(writer);
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let first = tokio::select! {
            biased;
            item = rx.recv() => item,
            _ = shutdown.wait_for(|down| *down) => None,
        };
        let Some(mut item) = first else { break };
        let mut closing = false;
        let mut close_ack = None;
        // Batch what is already queued into one write.
        loop {
            match item {
                Outgoing::Frame(frame) => {
                    if let Err(e) = encoder.encode(&frame, &mut buf) {
                        tracing::warn!(error = %e, "SPDY frame not sent");
                    }
                }
                Outgoing::Close(ack) => {
                    closing = true;
                    close_ack = ack;
                }
            }
            if closing || buf.len() >= 64 << 10 {
                break;
            }
            match rx.try_recv() {
                Ok(next) => item = next,
                Err(_) => break,
            }
        }
        if let Err(e) = writer.write_all(&buf).await.and(writer.flush().await) {
            tracing::debug!(error = %e, "SPDY write failed");
            break;
        }
        buf.clear();
        shared.touch();
        if closing {
            let _ = writer.shutdown().await;
            if let Some(ack) = close_ack {
                let _ = ack.send(());
            }
            return;
        }
    }
    let _ = writer.shutdown().await;
    shared.trigger_shutdown();
}

async fn read_loop<R: AsyncRead>(
    conn: Connection,
    reader: R,
    incoming: mpsc::Sender<IncomingStream>,
) {
    let shared = conn.shared.clone();
    let mut shutdown = shared.shutdown.subscribe();
    let result = tokio::select! {
        r = read_frames(&conn, reader, incoming) => r,
        _ = shutdown.wait_for(|down| *down) => Ok(()),
    };
    shared.mark_closed();
    // What is queued (and our GOAWAY, after a protocol error) still goes out, within reason.
    let flushed = async {
        if let Err(e) = &result {
            tracing::info!(error = %e, "SPDY connection closed on a protocol error");
            if !matches!(e, ReadError::Io(_)) {
                let last = shared.lock().last_remote_id;
                let goaway = Frame::GoAway {
                    last_good_stream_id: last,
                    status: goaway::PROTOCOL_ERROR,
                };
                let _ = shared.out.send(Outgoing::Frame(goaway)).await;
            }
        }
        let (done_tx, done_rx) = oneshot::channel();
        if shared
            .out
            .send(Outgoing::Close(Some(done_tx)))
            .await
            .is_ok()
        {
            let _ = done_rx.await;
        }
    };
    let _ = tokio::time::timeout(LINGER, flushed).await;
    shared.trigger_shutdown();
}

async fn read_frames<R: AsyncRead>(
    conn: &Connection,
    reader: R,
    incoming: mpsc::Sender<IncomingStream>,
) -> Result<(), ReadError> {
    let shared = &conn.shared;
    let mut decoder = FrameDecoder::new(shared.config.limits);
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut reader = std::pin::pin!(reader);
    loop {
        while let Some(frame) = decoder.decode(&mut buf)? {
            shared.touch();
            handle_frame(conn, frame, &incoming).await?;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 << 10);
        }
        if reader.read_buf(&mut buf).await? == 0 {
            return if buf.is_empty() {
                Ok(())
            } else {
                Err(ReadError::Protocol(
                    "connection ended inside a frame".into(),
                ))
            };
        }
    }
}

async fn handle_frame(
    conn: &Connection,
    frame: Frame,
    incoming: &mpsc::Sender<IncomingStream>,
) -> Result<(), ReadError> {
    let shared = &conn.shared;
    match frame {
        Frame::Data {
            stream_id,
            fin,
            data,
        } => on_data(shared, stream_id, fin, data).await,
        Frame::SynStream {
            stream_id,
            fin,
            unidirectional,
            headers,
            ..
        } => {
            if !shared.remote_initiated(stream_id) {
                return Err(ReadError::Protocol(format!(
                    "SYN_STREAM with our stream id {stream_id}"
                )));
            }
            let refuse = {
                let mut state = shared.lock();
                if stream_id <= state.last_remote_id {
                    return Err(ReadError::Protocol(format!(
                        "SYN_STREAM id {stream_id} not above the last one, {}",
                        state.last_remote_id
                    )));
                }
                state.last_remote_id = stream_id;
                if state.going_away || state.streams.len() >= shared.config.max_streams {
                    true
                } else {
                    let mut stream = StreamState::new(state.peer_initial_window);
                    stream.remote_closed = fin;
                    stream.local_closed = unidirectional;
                    state.streams.insert(stream_id, stream);
                    false
                }
            };
            if refuse {
                shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: rst::REFUSED_STREAM,
                    })
                    .await
                    .ok();
                return Ok(());
            }
            let new = IncomingStream {
                conn: conn.clone(),
                id: stream_id,
                headers,
                answered: false,
            };
            // A receiver that is gone drops (and so refuses) the stream.
            let _ = incoming.send(new).await;
            Ok(())
        }
        Frame::SynReply { stream_id, fin, .. } => {
            let duplicate = {
                let mut state = shared.lock();
                match state.streams.get_mut(&stream_id) {
                    Some(stream) => match stream.reply.take() {
                        Some(reply) => {
                            stream.remote_closed |= fin;
                            let _ = reply.send(Ok(()));
                            false
                        }
                        None => true,
                    },
                    None => false,
                }
            };
            if duplicate {
                shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: rst::STREAM_IN_USE,
                    })
                    .await
                    .ok();
            }
            Ok(())
        }
        Frame::RstStream { stream_id, status } => {
            let mut state = shared.lock();
            if let Some(mut stream) = state.streams.remove(&stream_id) {
                tracing::debug!(stream_id, status, "SPDY stream reset by peer");
                stream.data_ready.notify_one();
                stream.space_ready.notify_one();
                if let Some(reply) = stream.reply.take() {
                    let _ = reply.send(Err(status));
                }
            }
            drop(state);
            shared.window_changed.notify_waiters();
            Ok(())
        }
        Frame::Settings { entries, .. } => {
            let mut state = shared.lock();
            state.peer_flow_control = true;
            for setting in entries
                .iter()
                .filter(|s| s.id == SETTINGS_INITIAL_WINDOW_SIZE)
            {
                let value = i64::from(setting.value);
                if value > MAX_WINDOW {
                    return Err(ReadError::Protocol(format!(
                        "initial window size {value} above 2^31-1"
                    )));
                }
                let delta = value - state.peer_initial_window;
                state.peer_initial_window = value;
                for stream in state.streams.values_mut() {
                    stream.send_window += delta;
                }
            }
            drop(state);
            shared.window_changed.notify_waiters();
            Ok(())
        }
        Frame::Ping { id } => {
            // Pings we did not start (the other parity) are echoed; we start none.
            if shared.remote_initiated(id) {
                shared
                    .send(Frame::Ping { id })
                    .await
                    .map_err(|_| ReadError::Protocol("closed".into()))?;
            }
            Ok(())
        }
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            tracing::debug!(last_good_stream_id, status, "SPDY peer said GOAWAY");
            shared.lock().going_away = true;
            Ok(())
        }
        Frame::Headers { stream_id, fin, .. } => {
            if fin {
                remote_finished(shared, stream_id);
            }
            Ok(())
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let overflowed = {
                let mut state = shared.lock();
                state.peer_flow_control = true;
                let delta = i64::from(delta);
                let overflowed = if stream_id == 0 {
                    state.conn_send_window += delta;
                    if state.conn_send_window > MAX_WINDOW {
                        return Err(ReadError::Protocol("connection window above 2^31-1".into()));
                    }
                    false
                } else {
                    state.streams.get_mut(&stream_id).is_some_and(|stream| {
                        stream.send_window += delta;
                        stream.send_window > MAX_WINDOW
                    })
                };
                if overflowed {
                    state.streams.remove(&stream_id);
                }
                overflowed
            };
            shared.window_changed.notify_waiters();
            if overflowed {
                shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: rst::FLOW_CONTROL_ERROR,
                    })
                    .await
                    .ok();
            }
            Ok(())
        }
        Frame::Unknown { frame_type } => {
            tracing::debug!(frame_type, "ignoring unknown SPDY control frame");
            Ok(())
        }
    }
}

async fn on_data(
    shared: &Arc<Shared>,
    stream_id: u32,
    fin: bool,
    data: Bytes,
) -> Result<(), ReadError> {
    let len = data.len();
    let mut data = Some(data);
    loop {
        let step = {
            let mut state = shared.lock();
            match state.streams.get_mut(&stream_id) {
                // Late data for a finished stream still counts against the connection window.
                None => DataStep::Discard(credit(&mut state, stream_id, len)),
                Some(stream) if stream.remote_closed => DataStep::AlreadyClosed,
                Some(stream) if stream.recv_dropped => {
                    let updates = credit(&mut state, stream_id, len);
                    if fin {
                        remote_finished_locked(&mut state, stream_id);
                    }
                    DataStep::Discard(updates)
                }
                // Within our advertised window the data is always taken; beyond it (a peer that
                // ignores flow control) the reader waits for the application.
                Some(stream)
                    if stream.recv_bytes == 0
                        || stream.recv_bytes + len <= DEFAULT_WINDOW as usize =>
                {
                    if let Some(chunk) = data.take().filter(|d| !d.is_empty()) {
                        stream.recv_bytes += chunk.len();
                        stream.recv.push_back(chunk);
                    }
                    stream.data_ready.notify_one();
                    if fin {
                        remote_finished_locked(&mut state, stream_id);
                    }
                    return Ok(());
                }
                Some(stream) => DataStep::Wait(stream.space_ready.clone()),
            }
        };
        match step {
            DataStep::Discard(updates) => {
                for update in updates {
                    shared.send(update).await.ok();
                }
                return Ok(());
            }
            DataStep::AlreadyClosed => {
                shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: rst::STREAM_ALREADY_CLOSED,
                    })
                    .await
                    .ok();
                return Ok(());
            }
            DataStep::Wait(space_ready) => space_ready.notified().await,
        }
    }
}

enum DataStep {
    Discard(Vec<Frame>),
    AlreadyClosed,
    Wait(Arc<Notify>),
}

fn remote_finished(shared: &Shared, stream_id: u32) {
    remote_finished_locked(&mut shared.lock(), stream_id);
}

fn remote_finished_locked(state: &mut State, stream_id: u32) {
    if let Some(stream) = state.streams.get_mut(&stream_id) {
        stream.remote_closed = true;
        stream.data_ready.notify_one();
    }
}

async fn idle_watch(shared: Arc<Shared>, timeout: Duration) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let deadline = shared.lock().last_activity + timeout;
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                if shared.lock().last_activity + timeout <= Instant::now() {
                    tracing::info!(?timeout, "closing idle SPDY connection");
                    shared.trigger_shutdown();
                    return;
                }
            }
            _ = shutdown.wait_for(|down| *down) => return,
        }
    }
}
