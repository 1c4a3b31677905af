//! SPDY/3.1 frames: the 8-byte common header, the control frame types a kubectl/client-go
//! peer uses, and data frames. Decoding is incremental (a buffer may hold part of a frame) and
//! checks every length before it allocates.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::headers::{HeaderDecoder, HeaderEncoder, HeaderError, Headers};

pub const VERSION: u16 = 3;
const HEADER_LEN: usize = 8;
/// The 24-bit length field's ceiling.
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
const FLAG_SETTINGS_CLEAR: u8 = 0x01;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
}

/// GOAWAY status codes.
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
}

/// The SETTINGS id that sets the sender's initial per-stream window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        clear: bool,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame type SPDY/3.1 does not define (or NOOP, CREDENTIAL): the spec says to
    /// ignore it, so it is only reported.
    Unknown {
        frame_type: u16,
    },
}

/// What was wrong with a frame; any of these ends the connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("control frame of SPDY version {0}, only 3 is supported")]
    UnsupportedVersion(u16),
    #[error("{kind} frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} frame has length {len}, want {want}")]
    BadLength {
        kind: &'static str,
        len: usize,
        want: &'static str,
    },
    #[error("{kind} frame on stream 0")]
    ZeroStreamId { kind: &'static str },
    #[error("{kind} frame has flags {flags:#04x}, which it cannot carry")]
    BadFlags { kind: &'static str, flags: u8 },
    #[error("RST_STREAM with status 0")]
    ZeroRstStatus,
    #[error("PING with id 0")]
    ZeroPingId,
    #[error("WINDOW_UPDATE with a delta of 0")]
    ZeroWindowDelta,
    #[error("{kind} header block: {source}")]
    Headers {
        kind: &'static str,
        source: HeaderError,
    },
}

/// Bounds on what a peer may make us hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_data_frame: usize,
    pub max_control_frame: usize,
    pub max_header_block: usize,
    pub max_header_pairs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_data_frame: MAX_FRAME_LEN,
            max_control_frame: 1 << 20,
            max_header_block: 256 << 10,
            max_header_pairs: 256,
        }
    }
}

/// Decodes the peer's frames; owns the inbound header compression context.
pub struct FrameDecoder {
    limits: Limits,
    headers: HeaderDecoder,
}

impl FrameDecoder {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            headers: HeaderDecoder::new(limits.max_header_block, limits.max_header_pairs),
        }
    }

    /// Takes one whole frame off the front of `buf`, or returns None when `buf` holds only part
    /// of one. The header is checked as soon as it is complete, so an oversized or foreign
    /// frame is refused before its body is read.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
        let control = word & 0x8000_0000 != 0;
        if control {
            let version = ((word >> 16) & 0x7fff) as u16;
            if version != VERSION {
                return Err(FrameError::UnsupportedVersion(version));
            }
            if len > self.limits.max_control_frame {
                return Err(FrameError::TooLarge {
                    kind: "control",
                    len,
                    max: self.limits.max_control_frame,
                });
            }
        } else if len > self.limits.max_data_frame {
            return Err(FrameError::TooLarge {
                kind: "DATA",
                len,
                max: self.limits.max_data_frame,
            });
        }
        if buf.len() < HEADER_LEN + len {
            buf.reserve(HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        if control {
            self.control((word & 0xffff) as u16, flags, payload)
                .map(Some)
        } else {
            let stream_id = word & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(FrameError::ZeroStreamId { kind: "DATA" });
            }
            Ok(Some(Frame::Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }))
        }
    }

    fn control(&mut self, frame_type: u16, flags: u8, mut p: Bytes) -> Result<Frame, FrameError> {
        let len = p.len();
        let fin = flags & FLAG_FIN != 0;
        match frame_type {
            TYPE_SYN_STREAM => {
                at_least("SYN_STREAM", len, 10, ">= 10")?;
                let stream_id = stream_id("SYN_STREAM", p.get_u32())?;
                let associated_to = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                p.advance(1); // slot: unused by SPDY/3.1
                let headers = self.headers("SYN_STREAM", &p)?;
                let unidirectional = flags & FLAG_UNIDIRECTIONAL != 0;
                Ok(Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin,
                    unidirectional,
                    headers,
                })
            }
            TYPE_SYN_REPLY => {
                at_least("SYN_REPLY", len, 4, ">= 4")?;
                let stream_id = stream_id("SYN_REPLY", p.get_u32())?;
                let headers = self.headers("SYN_REPLY", &p)?;
                Ok(Frame::SynReply {
                    stream_id,
                    fin,
                    headers,
                })
            }
            TYPE_RST_STREAM => {
                exactly("RST_STREAM", len, 8, "8")?;
                no_flags("RST_STREAM", flags)?;
                let stream_id = stream_id("RST_STREAM", p.get_u32())?;
                let status = p.get_u32();
                if status == 0 {
                    return Err(FrameError::ZeroRstStatus);
                }
                Ok(Frame::RstStream { stream_id, status })
            }
            TYPE_SETTINGS => {
                at_least("SETTINGS", len, 4, "4 + 8 * entries")?;
                let count = p.get_u32() as usize;
                if count != p.len() / 8 || !p.len().is_multiple_of(8) {
                    return Err(FrameError::BadLength {
                        kind: "SETTINGS",
                        len,
                        want: "4 + 8 * entries",
                    });
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = p.get_u32();
                        Setting {
                            flags: (word >> 24) as u8,
                            id: word & 0x00ff_ffff,
                            value: p.get_u32(),
                        }
                    })
                    .collect();
                Ok(Frame::Settings {
                    clear: flags & FLAG_SETTINGS_CLEAR != 0,
                    entries,
                })
            }
            TYPE_PING => {
                exactly("PING", len, 4, "4")?;
                no_flags("PING", flags)?;
                let id = p.get_u32();
                if id == 0 {
                    return Err(FrameError::ZeroPingId);
                }
                Ok(Frame::Ping { id })
            }
            TYPE_GOAWAY => {
                exactly("GOAWAY", len, 8, "8")?;
                no_flags("GOAWAY", flags)?;
                Ok(Frame::GoAway {
                    last_good_stream_id: p.get_u32() & 0x7fff_ffff,
                    status: p.get_u32(),
                })
            }
            TYPE_HEADERS => {
                at_least("HEADERS", len, 4, ">= 4")?;
                let stream_id = stream_id("HEADERS", p.get_u32())?;
                let headers = self.headers("HEADERS", &p)?;
                Ok(Frame::Headers {
                    stream_id,
                    fin,
                    headers,
                })
            }
            TYPE_WINDOW_UPDATE => {
                exactly("WINDOW_UPDATE", len, 8, "8")?;
                no_flags("WINDOW_UPDATE", flags)?;
                // Stream 0 is the connection's window (SPDY/3.1).
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let delta = p.get_u32() & 0x7fff_ffff;
                if delta == 0 {
                    return Err(FrameError::ZeroWindowDelta);
                }
                Ok(Frame::WindowUpdate { stream_id, delta })
            }
            other => Ok(Frame::Unknown { frame_type: other }),
        }
    }

    fn headers(&mut self, kind: &'static str, block: &[u8]) -> Result<Headers, FrameError> {
        self.headers
            .decode(block)
            .map_err(|source| FrameError::Headers { kind, source })
    }
}

fn at_least(
    kind: &'static str,
    len: usize,
    min: usize,
    want: &'static str,
) -> Result<(), FrameError> {
    if len < min {
        return Err(FrameError::BadLength { kind, len, want });
    }
    Ok(())
}

fn exactly(
    kind: &'static str,
    len: usize,
    expected: usize,
    want: &'static str,
) -> Result<(), FrameError> {
    if len != expected {
        return Err(FrameError::BadLength { kind, len, want });
    }
    Ok(())
}

fn no_flags(kind: &'static str, flags: u8) -> Result<(), FrameError> {
    if flags != 0 {
        return Err(FrameError::BadFlags { kind, flags });
    }
    Ok(())
}

fn stream_id(kind: &'static str, word: u32) -> Result<u32, FrameError> {
    match word & 0x7fff_ffff {
        0 => Err(FrameError::ZeroStreamId { kind }),
        id => Ok(id),
    }
}

/// Encodes our frames; owns the outbound header compression context.
#[derive(Default)]
pub struct FrameEncoder {
    headers: HeaderEncoder,
}

impl FrameEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `frame` to `out`. Fails only for a frame whose body the 24-bit length cannot
    /// express.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                check_len("DATA", data.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                put_flags_len(out, if *fin { FLAG_FIN } else { 0 }, data.len());
                out.put_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let block = self.headers.encode(headers);
                check_len("SYN_STREAM", 10 + block.len())?;
                let flags = if *fin { FLAG_FIN } else { 0 }
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                put_control(out, TYPE_SYN_STREAM, flags, 10 + block.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8((priority & 0x7) << 5);
                out.put_u8(0);
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => self.stream_headers(out, TYPE_SYN_REPLY, *stream_id, *fin, headers)?,
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => self.stream_headers(out, TYPE_HEADERS, *stream_id, *fin, headers)?,
            Frame::RstStream { stream_id, status } => {
                put_control(out, TYPE_RST_STREAM, 0, 8);
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { clear, entries } => {
                check_len("SETTINGS", 4 + 8 * entries.len())?;
                put_control(
                    out,
                    TYPE_SETTINGS,
                    if *clear { FLAG_SETTINGS_CLEAR } else { 0 },
                    4 + 8 * entries.len(),
                );
                out.put_u32(entries.len() as u32);
                for s in entries {
                    out.put_u32((u32::from(s.flags) << 24) | (s.id & 0x00ff_ffff));
                    out.put_u32(s.value);
                }
            }
            Frame::Ping { id } => {
                put_control(out, TYPE_PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                put_control(out, TYPE_GOAWAY, 0, 8);
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                put_control(out, TYPE_WINDOW_UPDATE, 0, 8);
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Unknown { frame_type } => put_control(out, *frame_type, 0, 0),
        }
        Ok(())
    }

    fn stream_headers(
        &mut self,
        out: &mut BytesMut,
        frame_type: u16,
        stream_id: u32,
        fin: bool,
        headers: &Headers,
    ) -> Result<(), FrameError> {
        let block = self.headers.encode(headers);
        check_len("HEADERS", 4 + block.len())?;
        put_control(
            out,
            frame_type,
            if fin { FLAG_FIN } else { 0 },
            4 + block.len(),
        );
        out.put_u32(stream_id & 0x7fff_ffff);
        out.put_slice(&block);
        Ok(())
    }
}

fn check_len(kind: &'static str, len: usize) -> Result<(), FrameError> {
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            kind,
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(())
}

fn put_control(out: &mut BytesMut, frame_type: u16, flags: u8, len: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    put_flags_len(out, flags, len);
}

fn put_flags_len(out: &mut BytesMut, flags: u8, len: usize) {
    out.put_u32((u32::from(flags) << 24) | len as u32);
}
