//! Exec and port-forward through the server over WebSocket, and the SPDY port-forward tunnel.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{SinkExt, StreamExt};
use k8s_cri::v1::{ExecRequest, PortForwardRequest};
use runtime_streaming::spdy::session::{self, Role, SessionConfig};
use runtime_streaming::spdy::{Headers, SpdyStream};
use runtime_streaming::{SPDY_TUNNEL_PROTOCOL, TunnelIo};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{WebSocketStream, client_async};

use common::{pattern, server};

async fn ws_connect(url: &str, protocol: &str) -> WebSocketStream<TcpStream> {
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut request = ws_url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (address, _) = common::split_url(url);
    let tcp = TcpStream::connect(address).await.unwrap();
    let (socket, response) = client_async(request, tcp).await.unwrap();
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        protocol
    );
    socket
}

fn exec(cmd: &[&str], stdin: bool, stdout: bool, stderr: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        stdin,
        stdout,
        stderr,
        tty: false,
    }
}

/// Reads binary messages until the server closes, returning (channel, payload) pairs with
/// consecutive messages of one channel merged.
async fn read_channels(socket: &mut WebSocketStream<TcpStream>) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        let data = match message {
            Message::Binary(data) => data.to_vec(),
            Message::Text(text) => {
                let text = text.as_str();
                let mut data = vec![text.as_bytes()[0] - b'0'];
                data.extend(BASE64.decode(&text[1..]).unwrap());
                data
            }
            Message::Close(_) => break,
            _ => continue,
        };
        match out.last_mut() {
            Some((channel, payload)) if *channel == data[0] => {
                payload.extend_from_slice(&data[1..])
            }
            _ => out.push((data[0], data[1..].to_vec())),
        }
    }
    out
}

#[tokio::test]
async fn v5_exec_echoes_and_closes_stdin_with_the_close_channel() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["echo"], true, true, false))
        .unwrap()
        .url;
    let mut socket = ws_connect(&url, "v5.channel.k8s.io").await;
    socket
        .send(Message::Binary(b"\x00hello".to_vec().into()))
        .await
        .unwrap();
    socket
        .send(Message::Binary(b"\x00 ws".to_vec().into()))
        .await
        .unwrap();
    socket
        .send(Message::Binary(vec![255, 0].into()))
        .await
        .unwrap();
    let channels = read_channels(&mut socket).await;
    assert_eq!(
        channels,
        vec![
            (1, b"hello ws".to_vec()),
            (3, br#"{"metadata":{},"status":"Success"}"#.to_vec())
        ]
    );
}

#[tokio::test]
async fn base64_exec_reports_the_exit_code() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["exit", "4"], false, true, true))
        .unwrap()
        .url;
    let mut socket = ws_connect(&url, "v4.base64.channel.k8s.io").await;
    let channels = read_channels(&mut socket).await;
    assert_eq!(channels[0], (1, vec![]), "the empty hello on stdout");
    assert_eq!(channels[1], (2, b"bye".to_vec()));
    let status = String::from_utf8(channels[2].1.clone()).unwrap();
    assert_eq!(channels[2].0, 3);
    assert!(status.contains(r#""reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"4"}]}"#), "{status}");
}

#[tokio::test]
async fn unsupported_subprotocols_are_forbidden() {
    let server = server().await;
    let url = server
        .get_exec(&exec(&["echo"], true, true, false))
        .unwrap()
        .url;
    let mut request = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v9.channel.k8s.io".parse().unwrap(),
    );
    let tcp = TcpStream::connect(common::split_url(&url).0).await.unwrap();
    let err = client_async(request, tcp).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn v4_port_forward_prefixes_ports_and_echoes() {
    let server = server().await;
    let req = PortForwardRequest {
        pod_sandbox_id: "sb".into(),
        port: vec![],
    };
    let url = server.get_port_forward(&req).unwrap().url + "?port=1&port=2";
    let mut socket = ws_connect(&url, "v4.channel.k8s.io").await;
    let payload: Vec<u8> = (0..2 << 20).map(pattern).collect();
    let mut echoed = Vec::new();
    let mut errors = String::new();
    let mut prefixes = Vec::new();
    let mut sent = 0;
    // Port 1 echoes what we send on channel 0; port 2 is refused on channel 3.
    while echoed.len() < payload.len() || errors.is_empty() {
        if sent < payload.len() {
            let end = (sent + (64 << 10)).min(payload.len());
            let mut frame = vec![0u8];
            frame.extend_from_slice(&payload[sent..end]);
            socket.send(Message::Binary(frame.into())).await.unwrap();
            sent = end;
        }
        while let Ok(Some(Ok(Message::Binary(data)))) =
            tokio::time::timeout(std::time::Duration::from_millis(5), socket.next()).await
        {
            let (channel, body) = (data[0], &data[1..]);
            if prefixes.len() < 4 {
                prefixes.push((channel, body.to_vec()));
                continue;
            }
            match channel {
                0 => echoed.extend_from_slice(body),
                3 => errors.push_str(std::str::from_utf8(body).unwrap()),
                other => panic!("unexpected channel {other}"),
            }
        }
    }
    prefixes.sort();
    assert_eq!(
        prefixes,
        vec![
            (0, vec![1, 0]),
            (1, vec![1, 0]),
            (2, vec![2, 0]),
            (3, vec![2, 0])
        ]
    );
    assert!(echoed == payload, "echoed bytes differ");
    assert_eq!(
        errors,
        "error forwarding port 2 to pod sb, uid : connection refused"
    );
}

async fn read_all(stream: &SpdyStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.recv().await {
        out.extend_from_slice(&chunk);
    }
    out
}

#[tokio::test]
async fn spdy_tunnelled_in_websocket_forwards_ports() {
    let server = server().await;
    let req = PortForwardRequest {
        pod_sandbox_id: "sb".into(),
        port: vec![1],
    };
    let url = server.get_port_forward(&req).unwrap().url;
    let socket = ws_connect(&url, SPDY_TUNNEL_PROTOCOL).await;
    let config = SessionConfig {
        peer_flow_control: true,
        ..SessionConfig::default()
    };
    let (conn, _incoming) = session::start(TunnelIo::new(socket), Role::Client, config);
    let headers = |t: &str| {
        Headers::new()
            .with("streamType", t)
            .with("port", "1")
            .with("requestID", "0")
    };
    let error = conn.open(headers("error"), true).await.unwrap();
    let data = conn.open(headers("data"), false).await.unwrap();
    let payload: Vec<u8> = (0..3 << 20).map(pattern).collect();
    let ((), received) = tokio::join!(
        async {
            data.send(&payload).await.unwrap();
            data.finish().await.unwrap();
        },
        read_all(&data)
    );
    assert!(received == payload, "echoed bytes differ");
    assert!(read_all(&error).await.is_empty());
}
