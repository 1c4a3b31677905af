//! Terminal resize events: a stream of JSON objects like {"Width":80,"Height":24}, one per
//! change, as client-go writes them (upstream decodes with a json.Decoder, stopping at the
//! first malformed value).

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::backend::TermSize;

/// A resize object larger than this is not a resize object.
const MAX_PENDING: usize = 4096;

#[derive(Deserialize)]
struct Size {
    // Go matches JSON keys without regard to case.
    #[serde(rename = "Width", alias = "width", default)]
    width: u16,
    #[serde(rename = "Height", alias = "height", default)]
    height: u16,
}

/// Decodes `reader` until it ends or holds something that is not a size, sending each size.
pub fn decode_resizes<R>(mut reader: R) -> mpsc::Receiver<TermSize>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&chunk[..n]);
            let (sizes, consumed, malformed) = parse(&pending);
            for size in sizes {
                if tx.send(size).await.is_err() {
                    return;
                }
            }
            if malformed {
                tracing::debug!("stopping at a malformed resize event");
                return;
            }
            pending.drain(..consumed);
            if pending.len() > MAX_PENDING {
                tracing::debug!("resize event too large");
                return;
            }
        }
    });
    rx
}

/// The complete sizes at the front of `buf`, the bytes they took, and whether a malformed
/// value follows them.
fn parse(buf: &[u8]) -> (Vec<TermSize>, usize, bool) {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<Size>();
    let mut sizes = Vec::new();
    let mut consumed = 0;
    loop {
        match values.next() {
            Some(Ok(size)) => {
                consumed = values.byte_offset();
                sizes.push(TermSize {
                    width: size.width,
                    height: size.height,
                });
            }
            Some(Err(e)) if e.is_eof() => return (sizes, consumed, false),
            Some(Err(_)) => return (sizes, consumed, true),
            None => return (sizes, values.byte_offset(), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_objects_and_keeps_a_partial_one() {
        let (sizes, consumed, malformed) =
            parse(br#"{"Width":80,"Height":24}{"width":100,"height":30}{"Width":1"#);
        assert_eq!(
            sizes,
            vec![
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 30
                }
            ]
        );
        assert_eq!(consumed, 49);
        assert!(!malformed);
    }

    #[test]
    fn stops_at_garbage() {
        let (sizes, _, malformed) = parse(br#"{"Width":80,"Height":24} nonsense"#);
        assert_eq!(sizes.len(), 1);
        assert!(malformed);
    }
}
