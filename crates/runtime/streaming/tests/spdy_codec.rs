//! The SPDY/3.1 codec against frames written by hand from the spec, header blocks compressed
//! by an independent zlib (Python's, with the SPDY/3 dictionary), malformed input, and random
//! bytes.

use bytes::{Bytes, BytesMut};
use runtime_streaming::spdy::frame::Setting;
use runtime_streaming::spdy::{
    Frame, FrameDecoder, FrameEncoder, FrameError, HeaderDecoder, HeaderError, Headers, Limits,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
    let mut decoder = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf)? {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(frames)
}

fn decode_one(bytes: &[u8]) -> Result<Frame, FrameError> {
    let mut frames = decode_all(bytes)?;
    assert_eq!(frames.len(), 1);
    Ok(frames.remove(0))
}

/// Two header blocks compressed in one zlib context by Python's zlib with the SPDY/3
/// dictionary (level 9, sync flush after each), as spdystream does with Go's.
const PY_BLOCK_1: &str = "78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff";
const PY_BLOCK_2: &str = "c2aa19540e2512d60b000000ffff";

#[test]
fn fixed_control_frames_decode() {
    assert_eq!(
        decode_one(&hex("80030006 00000004 00000001")).unwrap(),
        Frame::Ping { id: 1 }
    );
    assert_eq!(
        decode_one(&hex("80030003 00000008 00000003 00000005")).unwrap(),
        Frame::RstStream {
            stream_id: 3,
            status: 5
        }
    );
    assert_eq!(
        decode_one(&hex("80030007 00000008 00000005 00000000")).unwrap(),
        Frame::GoAway {
            last_good_stream_id: 5,
            status: 0
        }
    );
    assert_eq!(
        decode_one(&hex("80030009 00000008 00000001 00010000")).unwrap(),
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 0x10000
        }
    );
    assert_eq!(
        decode_one(&hex("80030009 00000008 00000000 00008000")).unwrap(),
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 0x8000
        }
    );
    assert_eq!(
        decode_one(&hex("80030004 0000000c 00000001 00000007 00020000")).unwrap(),
        Frame::Settings {
            clear: false,
            entries: vec![Setting {
                flags: 0,
                id: 7,
                value: 0x20000
            }]
        }
    );
    assert_eq!(
        decode_one(&hex("00000001 01000002 6869")).unwrap(),
        Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::from_static(b"hi")
        }
    );
    // NOOP (type 5, gone in SPDY/3) and an undefined type are ignored, body and all.
    assert_eq!(
        decode_one(&hex("80030005 00000000")).unwrap(),
        Frame::Unknown { frame_type: 5 }
    );
    assert_eq!(
        decode_one(&hex("800300ff 00000003 010203")).unwrap(),
        Frame::Unknown { frame_type: 0xff }
    );
}

#[test]
fn syn_streams_with_independently_compressed_headers_decode() {
    let block1 = hex(PY_BLOCK_1);
    let block2 = hex(PY_BLOCK_2);
    let mut wire = Vec::new();
    // SYN_STREAM stream 1, FIN, priority 0; then stream 3, no flags.
    wire.extend(hex("80030001 01"));
    wire.extend(&((10 + block1.len()) as u32).to_be_bytes()[1..]);
    wire.extend(hex("00000001 00000000 0000"));
    wire.extend(&block1);
    wire.extend(hex("80030001 00"));
    wire.extend(&((10 + block2.len()) as u32).to_be_bytes()[1..]);
    wire.extend(hex("00000003 00000000 6000"));
    wire.extend(&block2);
    let frames = decode_all(&wire).unwrap();
    let Frame::SynStream {
        stream_id: 1,
        fin: true,
        headers,
        ..
    } = &frames[0]
    else {
        panic!("{:?}", frames[0])
    };
    assert_eq!(headers.get("streamType"), Some("error"));
    assert_eq!(headers.get("port"), Some("8080"));
    assert_eq!(headers.get("requestID"), Some("0"));
    let Frame::SynStream {
        stream_id: 3,
        fin: false,
        priority: 3,
        headers,
        ..
    } = &frames[1]
    else {
        panic!("{:?}", frames[1])
    };
    assert_eq!(headers.get("streamtype"), Some("data"));
}

#[test]
fn frames_round_trip_through_encoder_and_decoder() {
    let headers = Headers::new()
        .with("streamType", "stdout")
        .with("port", "80");
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 2,
            fin: false,
            unidirectional: true,
            headers: headers.clone(),
        },
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new(),
        },
        Frame::Headers {
            stream_id: 1,
            fin: true,
            headers: headers.clone(),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 0,
            priority: 0,
            fin: true,
            unidirectional: false,
            headers,
        },
        Frame::Data {
            stream_id: 3,
            fin: false,
            data: Bytes::from(vec![7u8; 70_000]),
        },
        Frame::Data {
            stream_id: 3,
            fin: true,
            data: Bytes::new(),
        },
        Frame::RstStream {
            stream_id: 3,
            status: 5,
        },
        Frame::Settings {
            clear: true,
            entries: vec![
                Setting {
                    flags: 1,
                    id: 4,
                    value: 100,
                },
                Setting {
                    flags: 0,
                    id: 7,
                    value: 1 << 20,
                },
            ],
        },
        Frame::Ping { id: 2 },
        Frame::GoAway {
            last_good_stream_id: 3,
            status: 1,
        },
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 12345,
        },
    ];
    let mut encoder = FrameEncoder::new();
    let mut wire = BytesMut::new();
    for frame in &frames {
        encoder.encode(frame, &mut wire).unwrap();
    }
    // Fed one byte at a time, the decoder must wait for whole frames.
    let mut decoder = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for byte in wire.iter() {
        buf.extend_from_slice(&[*byte]);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            decoded.push(frame);
        }
    }
    assert_eq!(decoded, frames);
}

#[test]
fn encoder_writes_the_spec_layout() {
    let mut encoder = FrameEncoder::new();
    let mut wire = BytesMut::new();
    encoder.encode(&Frame::Ping { id: 7 }, &mut wire).unwrap();
    encoder
        .encode(
            &Frame::Data {
                stream_id: 5,
                fin: true,
                data: Bytes::from_static(b"ok"),
            },
            &mut wire,
        )
        .unwrap();
    encoder
        .encode(
            &Frame::WindowUpdate {
                stream_id: 1,
                delta: 1,
            },
            &mut wire,
        )
        .unwrap();
    assert_eq!(
        wire.to_vec(),
        hex(
            "80030006 00000004 00000007  00000005 01000002 6f6b  80030009 00000008 00000001 00000001"
        )
    );
    // Our header blocks start a zlib stream that names the SPDY/3 dictionary (id 0xe3c6a7c2).
    let mut wire = BytesMut::new();
    encoder
        .encode(
            &Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            &mut wire,
        )
        .unwrap();
    assert_eq!(&wire[..4], &hex("80030002")[..]);
    assert_eq!(&wire[12..18], &hex("78 bb e3c6a7c2")[..]);
}

#[test]
fn malformed_frames_are_refused_with_their_reason() {
    let cases: Vec<(&str, FrameError)> = vec![
        (
            "80020006 00000004 00000001",
            FrameError::UnsupportedVersion(2),
        ),
        (
            "80030006 00000008 00000001 00000002",
            FrameError::BadLength {
                kind: "PING",
                len: 8,
                want: "4",
            },
        ),
        (
            "80030006 01000004 00000001",
            FrameError::BadFlags {
                kind: "PING",
                flags: 1,
            },
        ),
        ("80030006 00000004 00000000", FrameError::ZeroPingId),
        (
            "80030003 00000004 00000001",
            FrameError::BadLength {
                kind: "RST_STREAM",
                len: 4,
                want: "8",
            },
        ),
        (
            "80030003 00000008 00000001 00000000",
            FrameError::ZeroRstStatus,
        ),
        (
            "80030003 00000008 00000000 00000001",
            FrameError::ZeroStreamId { kind: "RST_STREAM" },
        ),
        (
            "80030009 00000008 00000001 00000000",
            FrameError::ZeroWindowDelta,
        ),
        (
            "80030009 00000004 00000001",
            FrameError::BadLength {
                kind: "WINDOW_UPDATE",
                len: 4,
                want: "8",
            },
        ),
        (
            "80030007 00000004 00000001",
            FrameError::BadLength {
                kind: "GOAWAY",
                len: 4,
                want: "8",
            },
        ),
        (
            "80030004 00000008 00000002 00000001",
            FrameError::BadLength {
                kind: "SETTINGS",
                len: 8,
                want: "4 + 8 * entries",
            },
        ),
        (
            "80030004 00000002 0000",
            FrameError::BadLength {
                kind: "SETTINGS",
                len: 2,
                want: "4 + 8 * entries",
            },
        ),
        (
            "80030001 00000004 00000001",
            FrameError::BadLength {
                kind: "SYN_STREAM",
                len: 4,
                want: ">= 10",
            },
        ),
        (
            "80030001 0000000a 00000000 00000000 0000",
            FrameError::ZeroStreamId { kind: "SYN_STREAM" },
        ),
        (
            "80030002 00000002 0000",
            FrameError::BadLength {
                kind: "SYN_REPLY",
                len: 2,
                want: ">= 4",
            },
        ),
        (
            "00000000 00000001 00",
            FrameError::ZeroStreamId { kind: "DATA" },
        ),
    ];
    for (wire, want) in cases {
        assert_eq!(decode_all(&hex(wire)), Err(want), "{wire}");
    }
}

#[test]
fn oversized_frames_are_refused_from_their_header_alone() {
    let mut decoder = FrameDecoder::new(Limits::default());
    // A 16 MiB control frame announced, no body sent: refused before anything is buffered.
    let mut buf = BytesMut::from(&hex("80030001 00ffffff")[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(FrameError::TooLarge {
            kind: "control",
            len: 0xff_ffff,
            max: 1 << 20
        })
    );
    let limits = Limits {
        max_data_frame: 1024,
        ..Limits::default()
    };
    let mut buf = BytesMut::from(&hex("00000001 00000401")[..]);
    assert_eq!(
        FrameDecoder::new(limits).decode(&mut buf),
        Err(FrameError::TooLarge {
            kind: "DATA",
            len: 1025,
            max: 1024
        })
    );
}

fn syn_stream_with_block(block: &[u8]) -> Vec<u8> {
    let mut wire = hex("80030001 00");
    wire.extend(&((10 + block.len()) as u32).to_be_bytes()[1..]);
    wire.extend(hex("00000001 00000000 0000"));
    wire.extend(block);
    wire
}

fn header_error(wire: &[u8]) -> HeaderError {
    match decode_all(wire) {
        Err(FrameError::Headers { source, .. }) => source,
        other => panic!("want a header error, got {other:?}"),
    }
}

#[test]
fn bad_header_blocks_are_refused() {
    assert!(matches!(
        header_error(&syn_stream_with_block(b"not zlib at all")),
        HeaderError::Zlib(_)
    ));
    // Compressed by Python's zlib with a dictionary other than SPDY's.
    let foreign = hex("78f9360b06796260606004e144109104000000ffff");
    assert!(matches!(
        header_error(&syn_stream_with_block(&foreign)),
        HeaderError::WrongDictionary(_)
    ));
    // A valid block cut short: its pairs end early.
    let block = hex(PY_BLOCK_1);
    assert_eq!(
        header_error(&syn_stream_with_block(&block[..20])),
        HeaderError::Truncated
    );
}

/// Compresses a raw (uncompressed) header block the way a peer would.
fn compress_raw(raw: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let dict = spdy_dictionary();
    let mut c = Compress::new(Compression::default(), true);
    c.set_dictionary(&dict).unwrap();
    let mut out = Vec::with_capacity(raw.len() + 1024);
    c.compress_vec(raw, &mut out, FlushCompress::Sync).unwrap();
    out
}

/// The SPDY/3 dictionary, extracted from the spec's listing.
fn spdy_dictionary() -> Vec<u8> {
    include_bytes!("fixtures/spdy3.dict").to_vec()
}

#[test]
fn header_blocks_beyond_limits_are_refused() {
    let pairs = |count: u32, body: &[u8]| {
        let mut raw = count.to_be_bytes().to_vec();
        raw.extend_from_slice(body);
        raw
    };
    let mut decoder = HeaderDecoder::new(1024, 16);
    assert_eq!(
        decoder.decode(&compress_raw(&pairs(17, &[0; 200]))),
        Err(HeaderError::TooManyPairs { count: 17, max: 16 })
    );
    let mut decoder = HeaderDecoder::new(1024, 16);
    assert_eq!(
        decoder.decode(&compress_raw(&pairs(1, &[0; 2000]))),
        Err(HeaderError::TooLarge { max: 1024 })
    );
    let mut decoder = HeaderDecoder::new(1024, 16);
    assert_eq!(
        decoder.decode(&compress_raw(&pairs(2, &[0; 12]))),
        Err(HeaderError::Truncated)
    );
    let mut decoder = HeaderDecoder::new(1024, 16);
    let mut raw = pairs(1, &[0, 0, 0, 1, b'a', 0, 0, 0, 0]);
    raw.push(9);
    assert_eq!(
        decoder.decode(&compress_raw(&raw)),
        Err(HeaderError::TrailingBytes(1))
    );
    let mut decoder = HeaderDecoder::new(1024, 16);
    assert_eq!(
        decoder.decode(&compress_raw(&pairs(1, &[0, 0, 0, 0, 0, 0, 0, 0]))),
        Err(HeaderError::EmptyName)
    );
    let mut decoder = HeaderDecoder::new(1024, 16);
    let dup = [
        &[0, 0, 0, 1, b'a', 0, 0, 0, 0][..],
        &[0, 0, 0, 1, b'A', 0, 0, 0, 0][..],
    ]
    .concat();
    assert_eq!(
        decoder.decode(&compress_raw(&pairs(2, &dup))),
        Err(HeaderError::DuplicateName("A".into()))
    );
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Feeds `bytes` in random pieces; any outcome but a panic or a runaway buffer is fine.
fn feed(rng: &mut Rng, bytes: &[u8]) {
    let mut decoder = FrameDecoder::new(Limits {
        max_data_frame: 1 << 16,
        max_control_frame: 1 << 16,
        ..Limits::default()
    });
    let mut buf = BytesMut::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(64));
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(
            buf.capacity() <= (1 << 16) + 4096,
            "decoder buffered {} bytes",
            buf.capacity()
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(256);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Make half of them look like SPDY/3 control frames so the bodies get parsed.
        if len >= 8 && rng.below(2) == 0 {
            bytes[0] = 0x80;
            bytes[1] = 3;
            bytes[2] = 0;
            bytes[3] = rng.below(11) as u8;
            bytes[5] = 0;
        }
        feed(&mut rng, &bytes);
    }
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut encoder = FrameEncoder::new();
    let mut wire = BytesMut::new();
    let headers = Headers::new()
        .with("streamType", "data")
        .with("port", "8080")
        .with("requestID", "1");
    for id in [1u32, 3, 5] {
        let syn = Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: headers.clone(),
        };
        encoder.encode(&syn, &mut wire).unwrap();
        encoder
            .encode(
                &Frame::Data {
                    stream_id: id,
                    fin: true,
                    data: Bytes::from_static(b"payload"),
                },
                &mut wire,
            )
            .unwrap();
    }
    encoder
        .encode(
            &Frame::Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 0,
                    id: 7,
                    value: 1000,
                }],
            },
            &mut wire,
        )
        .unwrap();
    let valid = wire.to_vec();
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        feed(&mut rng, &bytes);
    }
}
