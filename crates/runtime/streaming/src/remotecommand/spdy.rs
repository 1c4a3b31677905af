//! Exec and attach over SPDY: the client opens one stream per standard stream, named by its
//! `streamType` header, and we wait (up to the creation timeout) for all it promised.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{Command, StreamOptions, Version};
use crate::backend::{Backend, ExecIo};
use crate::resize::decode_resizes;
use crate::spdy::frame::rst;
use crate::spdy::pipe::pipe;
use crate::spdy::{Connection, Incoming, SpdyStream};

#[derive(Default)]
struct Streams {
    error: Option<SpdyStream>,
    stdin: Option<SpdyStream>,
    stdout: Option<SpdyStream>,
    stderr: Option<SpdyStream>,
    resize: Option<SpdyStream>,
    /// Streams of unknown type: answered, as upstream does, but unused.
    other: Vec<SpdyStream>,
}

pub struct Session {
    pub version: Version,
    pub options: StreamOptions,
    pub command: Command,
    pub creation_timeout: Duration,
}

impl Session {
    pub async fn serve(self, conn: Connection, mut incoming: Incoming, backend: Arc<dyn Backend>) {
        let Some(streams) = self.collect(&mut incoming).await else {
            conn.close().await;
            return;
        };
        // Streams opened after the session started have no place in it.
        tokio::spawn(async move {
            while let Some(stream) = incoming.next().await {
                stream.reject(rst::REFUSED_STREAM).await;
            }
        });
        let _unused = streams.other;
        let mut outputs: Vec<JoinHandle<()>> = Vec::new();
        let mut output = |stream: Option<SpdyStream>| {
            stream.map(|s| {
                let (far, done) = pipe(s);
                outputs.push(done);
                Box::new(far) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>
            })
        };
        let stdout = output(streams.stdout);
        let stderr = output(streams.stderr);
        let io = ExecIo {
            stdin: streams
                .stdin
                .map(|s| Box::new(pipe(s).0) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            stdout,
            stderr: if self.options.tty { None } else { stderr },
            tty: self.options.tty,
            resize: streams
                .resize
                .filter(|_| self.options.tty)
                .map(|s| decode_resizes(pipe(s).0)),
        };
        let outcome = self.command.run(&backend, io).await;
        // The client reads the status after its output streams end, so they go first.
        for done in outputs {
            let _ = done.await;
        }
        if let Some(error) = streams.error {
            if let Some(payload) = self.version.status_payload(&outcome) {
                let _ = error.send(&payload).await;
            }
            let _ = error.finish().await;
        }
        conn.close().await;
    }

    fn expected_streams(&self) -> usize {
        let o = &self.options;
        1 + usize::from(o.stdin)
            + usize::from(o.stdout)
            + usize::from(o.stderr)
            + usize::from(o.tty && self.version.supports_resize())
    }

    async fn collect(&self, incoming: &mut Incoming) -> Option<Streams> {
        let expected = self.expected_streams();
        let mut streams = Streams::default();
        let mut received = 0;
        let deadline = tokio::time::sleep(self.creation_timeout);
        tokio::pin!(deadline);
        while received < expected {
            let next = tokio::select! {
                next = incoming.next() => next?,
                _ = &mut deadline => {
                    tracing::warn!("timed out waiting for client to create streams");
                    return None;
                }
            };
            let kind = next.headers().get("streamType").unwrap_or("").to_owned();
            let stream = next.accept().await.ok()?;
            let slot = match kind.as_str() {
                "error" => &mut streams.error,
                "stdin" => &mut streams.stdin,
                "stdout" => &mut streams.stdout,
                "stderr" => &mut streams.stderr,
                "resize" if self.version.supports_resize() => &mut streams.resize,
                other => {
                    tracing::warn!(stream_type = other, "unexpected stream type");
                    streams.other.push(stream);
                    continue;
                }
            };
            *slot = Some(stream);
            received += 1;
        }
        Some(streams)
    }
}
