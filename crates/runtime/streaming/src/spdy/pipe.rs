//! Byte-stream views of SPDY streams: the backend reads and writes plain pipes while two small
//! tasks move the bytes to and from frames.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

use super::session::SpdyStream;

const PIPE_BUFFER: usize = 64 << 10;

/// Connects `stream` to an in-memory pipe. Returns the pipe's far end (for the backend) and a
/// handle that completes once all the far end wrote has been sent, followed by our FIN (or the
/// stream failed). The peer's FIN reaches the far end as end of file.
pub fn pipe(stream: SpdyStream) -> (DuplexStream, JoinHandle<()>) {
    let (far, near) = tokio::io::duplex(PIPE_BUFFER);
    let (mut near_read, mut near_write) = tokio::io::split(near);
    let stream = Arc::new(stream);
    let inbound = stream.clone();
    tokio::spawn(async move {
        while let Some(chunk) = inbound.recv().await {
            if near_write.write_all(&chunk).await.is_err() {
                // The backend stopped reading; later data is discarded, not buffered.
                inbound.stop_receiving();
                return;
            }
        }
        let _ = near_write.shutdown().await;
    });
    let outbound = tokio::spawn(async move {
        let mut buf = vec![0; 32 << 10];
        loop {
            match near_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.send(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = stream.finish().await;
    });
    (far, outbound)
}
