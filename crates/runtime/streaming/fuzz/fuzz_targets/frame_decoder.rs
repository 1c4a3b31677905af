//! The SPDY frame decoder and header decompression on arbitrary bytes: any result but a panic
//! or a buffer beyond the limits is fine. The first byte picks how the input is split into
//! reads, so partial frames are exercised too.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use runtime_streaming::spdy::{FrameDecoder, Limits};

fuzz_target!(|input: &[u8]| {
    let Some((&split, bytes)) = input.split_first() else { return };
    let step = usize::from(split).max(1);
    let limits = Limits { max_data_frame: 1 << 16, max_control_frame: 1 << 16, ..Limits::default() };
    let mut decoder = FrameDecoder::new(limits);
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.capacity() <= (1 << 16) + 4096 + step);
    }
});
