//! Exec and attach over WebSocket: channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize.

use std::sync::Arc;
use std::time::Duration;

use super::{Codec, Inputs, Socket, run};
use crate::backend::{Backend, ExecIo};
use crate::remotecommand::{Command, StreamOptions, Version};
use crate::resize::decode_resizes;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// The subprotocols, as upstream's kubelet serves them ("" for a client that offers none).
pub const PROTOCOLS: [&str; 6] = [
    "",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v5.channel.k8s.io",
];

/// The version and codec behind a negotiated subprotocol.
pub fn protocol(name: &str) -> (Version, Codec) {
    match name {
        "v5.channel.k8s.io" => (Version::V5, Codec::Binary),
        "v4.channel.k8s.io" => (Version::V4, Codec::Binary),
        "v4.base64.channel.k8s.io" => (Version::V4, Codec::Base64),
        "base64.channel.k8s.io" => (Version::V1, Codec::Base64),
        _ => (Version::V1, Codec::Binary),
    }
}

pub struct Session {
    pub protocol: &'static str,
    pub options: StreamOptions,
    pub command: Command,
    pub idle_timeout: Option<Duration>,
}

impl Session {
    pub async fn serve(self, socket: Socket, backend: Arc<dyn Backend>) {
        let (version, codec) = protocol(self.protocol);
        let opts = self.options;
        let mut inputs = Inputs::default();
        let stdin = opts.stdin.then(|| inputs.input(STDIN));
        let resize = opts.tty.then(|| inputs.input(RESIZE));
        let (sender, _reader) = run(
            socket,
            codec,
            version == Version::V5,
            inputs,
            self.idle_timeout,
        );

        let mut outputs = Vec::new();
        let mut output = |wanted: bool, channel: u8| {
            wanted.then(|| {
                let (far, done) = sender.output(channel);
                outputs.push(done);
                Box::new(far) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>
            })
        };
        let stdout = output(opts.stdout, STDOUT);
        let stderr = output(opts.stderr && !opts.tty, STDERR);
        // An empty message on the lowest writable channel tells the client the session is up.
        let first = if opts.stdout {
            STDOUT
        } else if opts.stderr {
            STDERR
        } else {
            ERROR
        };
        sender.send(first, &[]).await;

        let io = ExecIo {
            stdin: stdin.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            stdout,
            stderr,
            tty: opts.tty,
            resize: resize.map(decode_resizes),
        };
        let outcome = self.command.run(&backend, io).await;
        for done in outputs {
            let _ = done.await;
        }
        if let Some(payload) = version.status_payload(&outcome) {
            sender.send(ERROR, &payload).await;
        }
        sender.close().await;
    }
}
