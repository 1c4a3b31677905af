//! SPDY/3.1 flow control between two sessions over an in-memory pipe.

use std::time::Duration;

use runtime_streaming::spdy::session::{self, Role, SessionConfig};
use runtime_streaming::spdy::{Frame, FrameEncoder, Headers};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_compliant_sender_waits_for_the_readers_window() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let client_config = SessionConfig {
        peer_flow_control: true,
        ..SessionConfig::default()
    };
    let (client, _) = session::start(a, Role::Client, client_config);
    let (_server, mut incoming) = session::start(b, Role::Server, SessionConfig::default());
    let accept =
        tokio::spawn(async move { incoming.next().await.unwrap().accept().await.unwrap() });
    let stream = client
        .open(Headers::new().with("streamType", "stdin"), false)
        .await
        .unwrap();
    let served = accept.await.unwrap();

    // Nothing is read on the server side: the sender stops at the 64 KiB window.
    let data = vec![7u8; 1 << 20];
    let blocked = tokio::time::timeout(Duration::from_millis(300), stream.send(&data)).await;
    assert!(blocked.is_err(), "1 MiB went out without window updates");

    // Reading reopens the window; everything arrives, in order.
    let reader = tokio::spawn(async move {
        let mut total = 0;
        while let Some(chunk) = served.recv().await {
            assert!(chunk.iter().all(|&b| b == 7));
            total += chunk.len();
        }
        total
    });
    stream.send(&data).await.unwrap();
    stream.finish().await.unwrap();
    // The first, interrupted send delivered part of the data before it was cancelled.
    let total = reader.await.unwrap();
    assert!(total >= data.len() && total <= 2 * data.len(), "{total}");
}

#[tokio::test]
async fn pings_are_echoed_and_malformed_input_ends_the_session() {
    let (mut raw, b) = tokio::io::duplex(1 << 16);
    let (server, _incoming) = session::start(b, Role::Server, SessionConfig::default());
    let mut wire = bytes::BytesMut::new();
    let mut encoder = FrameEncoder::new();
    encoder.encode(&Frame::Ping { id: 1 }, &mut wire).unwrap();
    raw.write_all(&wire).await.unwrap();
    let mut decoder = runtime_streaming::spdy::FrameDecoder::new(Default::default());
    let mut buf = bytes::BytesMut::new();
    let echoed = loop {
        if let Some(frame) = decoder.decode(&mut buf).unwrap() {
            break frame;
        }
        tokio::io::AsyncReadExt::read_buf(&mut raw, &mut buf)
            .await
            .unwrap();
    };
    assert_eq!(echoed, Frame::Ping { id: 1 });

    // A SPDY/2 frame: the session says GOAWAY (protocol error) and ends.
    raw.write_all(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 3])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.closed())
        .await
        .unwrap();
    let goaway = loop {
        if let Some(frame) = decoder.decode(&mut buf).unwrap() {
            break frame;
        }
        tokio::io::AsyncReadExt::read_buf(&mut raw, &mut buf)
            .await
            .unwrap();
    };
    assert_eq!(
        goaway,
        Frame::GoAway {
            last_good_stream_id: 0,
            status: 1
        }
    );
}
