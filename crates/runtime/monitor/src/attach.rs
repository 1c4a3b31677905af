//! The attach protocol on state_dir/attach.sock, for the streaming server.
//!
//! Both directions carry frames `KIND (1 byte) | LEN (u32, big endian) | PAYLOAD (LEN bytes)`.
//! Client to monitor: 0 stdin bytes, 1 this client's stdin ended (no payload), 2 resize the tty
//! (u16 width, u16 height, big endian). For a `stdin_once` container the first client whose
//! stdin ends (frame 1, or it disconnects after writing stdin) closes the container's stdin
//! (a tty gets ^D); otherwise stdin stays open for later clients. Monitor to client: 1 stdout bytes, 2 stderr bytes (a tty's output
//! is stdout), 3 the container exited (i32 exit code, big endian), after which the monitor
//! closes the connection. Output is sent as the monitor reads it, from the moment of connecting;
//! a client that falls more than [`MAX_BACKLOG`] bytes behind is disconnected, so a slow client
//! never holds up the container's log.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The largest payload either side sends or accepts.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Output queued for one client before the monitor drops it.
pub const MAX_BACKLOG: usize = 4 << 20;
const HEADER: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    Stdin(Vec<u8>),
    CloseStdin,
    Resize { width: u16, height: u16 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFrame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("unknown attach frame kind {0}")]
    Kind(u8),
    #[error("attach frame of {0} bytes is larger than the limit")]
    TooLarge(usize),
    #[error("attach frame kind {kind} with a payload of {len} bytes")]
    BadPayload { kind: u8, len: usize },
}

/// Appends one frame to `out`.
fn put(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A frame's kind, its payload and the bytes it took.
type RawFrame<'a> = (u8, &'a [u8], usize);

/// Splits the first whole frame off `buf`: Ok(None) while it is incomplete.
fn take(buf: &[u8]) -> Result<Option<RawFrame<'_>>, FrameError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    Ok(buf
        .get(HEADER..HEADER + len)
        .map(|payload| (buf[0], payload, HEADER + len)))
}

impl ClientFrame {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ClientFrame::Stdin(data) => put(out, 0, data),
            ClientFrame::CloseStdin => put(out, 1, &[]),
            ClientFrame::Resize { width, height } => {
                let [w0, w1] = width.to_be_bytes();
                let [h0, h1] = height.to_be_bytes();
                put(out, 2, &[w0, w1, h0, h1]);
            }
        }
    }

    /// The first frame in `buf` and its encoded length, Ok(None) if `buf` holds less than one.
    pub fn decode(buf: &[u8]) -> Result<Option<(ClientFrame, usize)>, FrameError> {
        let Some((kind, payload, used)) = take(buf)? else {
            return Ok(None);
        };
        let frame = match (kind, payload) {
            (0, data) => ClientFrame::Stdin(data.to_vec()),
            (1, []) => ClientFrame::CloseStdin,
            (2, [w0, w1, h0, h1]) => ClientFrame::Resize {
                width: u16::from_be_bytes([*w0, *w1]),
                height: u16::from_be_bytes([*h0, *h1]),
            },
            (0..=2, _) => {
                return Err(FrameError::BadPayload {
                    kind,
                    len: payload.len(),
                });
            }
            _ => return Err(FrameError::Kind(kind)),
        };
        Ok(Some((frame, used)))
    }
}

impl ServerFrame {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ServerFrame::Stdout(data) => put(out, 1, data),
            ServerFrame::Stderr(data) => put(out, 2, data),
            ServerFrame::Exit(code) => put(out, 3, &code.to_be_bytes()),
        }
    }

    /// The first frame in `buf` and its encoded length, Ok(None) if `buf` holds less than one.
    pub fn decode(buf: &[u8]) -> Result<Option<(ServerFrame, usize)>, FrameError> {
        let Some((kind, payload, used)) = take(buf)? else {
            return Ok(None);
        };
        let frame = match (kind, payload) {
            (1, data) => ServerFrame::Stdout(data.to_vec()),
            (2, data) => ServerFrame::Stderr(data.to_vec()),
            (3, [a, b, c, d]) => ServerFrame::Exit(i32::from_be_bytes([*a, *b, *c, *d])),
            (3, _) => {
                return Err(FrameError::BadPayload {
                    kind,
                    len: payload.len(),
                });
            }
            _ => return Err(FrameError::Kind(kind)),
        };
        Ok(Some((frame, used)))
    }
}

/// Connects to the attach socket of the monitor in `state_dir`.
pub fn connect(state_dir: &Path) -> io::Result<UnixStream> {
    crate::sock::connect(state_dir, crate::files::ATTACH_SOCKET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut wire = Vec::new();
        let sent = [
            ClientFrame::Stdin(b"hello\n".to_vec()),
            ClientFrame::Resize {
                width: 80,
                height: 24,
            },
            ClientFrame::CloseStdin,
        ];
        sent.iter().for_each(|f| f.encode(&mut wire));
        assert_eq!(&wire[..5], &[0, 0, 0, 0, 6]);
        assert_eq!(ClientFrame::decode(&wire[..7]), Ok(None));
        let mut got = Vec::new();
        let mut rest = &wire[..];
        while let Some((frame, used)) = ClientFrame::decode(rest).unwrap() {
            got.push(frame);
            rest = &rest[used..];
        }
        assert_eq!(got, sent);
        assert!(rest.is_empty());

        let mut wire = Vec::new();
        ServerFrame::Exit(-3).encode(&mut wire);
        ServerFrame::Stderr(b"e".to_vec()).encode(&mut wire);
        let (frame, used) = ServerFrame::decode(&wire).unwrap().unwrap();
        assert_eq!(frame, ServerFrame::Exit(-3));
        assert_eq!(
            ServerFrame::decode(&wire[used..]).unwrap().unwrap().0,
            ServerFrame::Stderr(b"e".to_vec())
        );
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(
            ClientFrame::decode(&[9, 0, 0, 0, 0]),
            Err(FrameError::Kind(9))
        );
        assert_eq!(
            ClientFrame::decode(&[2, 0, 0, 0, 1, 7]),
            Err(FrameError::BadPayload { kind: 2, len: 1 })
        );
        assert_eq!(
            ServerFrame::decode(&[1, 0xff, 0, 0, 0]),
            Err(FrameError::TooLarge(0xff00_0000))
        );
    }
}
