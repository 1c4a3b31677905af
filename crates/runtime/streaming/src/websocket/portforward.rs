//! Port forwarding over WebSocket (v4.channel.k8s.io): for the i-th requested port, channel 2i
//! carries data and 2i+1 errors; each starts with the port, little endian, as kubectl expects.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use super::{Codec, Inputs, Socket, run};
use crate::backend::Backend;
use crate::portforward::forward_error;

pub const PROTOCOLS: [&str; 3] = ["", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"];

pub fn codec(protocol: &str) -> Codec {
    if protocol.contains("base64") {
        Codec::Base64
    } else {
        Codec::Binary
    }
}

pub struct Forwarder {
    pub protocol: &'static str,
    pub sandbox_id: String,
    pub ports: Vec<u16>,
    pub idle_timeout: Option<Duration>,
}

impl Forwarder {
    pub async fn serve(self, socket: Socket, backend: Arc<dyn Backend>) {
        let mut inputs = Inputs::default();
        // Pipes exist before the reader starts, so no early message is lost.
        let halves: Vec<_> = (0..self.ports.len())
            .map(|i| inputs.duplex((2 * i) as u8))
            .collect();
        let (sender, reader) = run(
            socket,
            codec(self.protocol),
            false,
            inputs,
            self.idle_timeout,
        );
        let pipes: Vec<_> = halves
            .into_iter()
            .enumerate()
            .map(|(i, (far, near))| ((2 * i) as u8, far, sender.pump(near, (2 * i) as u8)))
            .collect();
        for (i, port) in self.ports.iter().enumerate() {
            let prefix = port.to_le_bytes();
            sender.send((2 * i) as u8, &prefix).await;
            sender.send((2 * i + 1) as u8, &prefix).await;
        }
        let sandbox_id = self.sandbox_id.as_str();
        let forwards = pipes
            .into_iter()
            .zip(&self.ports)
            .map(|((channel, far, done), &port)| {
                let backend = backend.clone();
                let sender = sender.clone();
                async move {
                    let result = backend.port_forward(sandbox_id, port, Box::new(far)).await;
                    let _ = done.await;
                    if let Err(e) = result {
                        let msg = forward_error(port, sandbox_id, &e);
                        tracing::info!("{msg}");
                        sender.send(channel + 1, msg.as_bytes()).await;
                    }
                }
            });
        join_all(forwards).await;
        reader.abort();
        sender.close().await;
    }
}
