//! SPDY/3.1 (the framing layer Kubernetes streaming runs on): frames, header compression and
//! sessions, written here because no maintained crate serves SPDY.

mod dictionary;
pub mod frame;
pub mod headers;
pub mod pipe;
pub mod session;

pub use frame::{Frame, FrameDecoder, FrameEncoder, FrameError, Limits};
pub use headers::{HeaderDecoder, HeaderEncoder, HeaderError, Headers};
pub use session::{
    Connection, Incoming, IncomingStream, Role, SessionConfig, SessionError, SpdyStream,
};
