//! A tiny HTTP/1.1 server on 127.0.0.1 whose paths script the answers probes get.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves until the test ends. Paths:
/// - `/status/N`: status N, body "status N"
/// - `/redirect/N`: 302 to `/redirect/N-1`; `/redirect/0` is 200
/// - `/elsewhere`: 302 to the same server named "localhost" (another host), with a 20 KiB body
/// - `/big`: 200 with a 20 KiB body
/// - `/headers`: 200, the request head as the body
/// - `/slow`: answers after 5 s
pub async fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, port));
        }
    });
    port
}

/// Answers one request on `stream`; `port` is the server's, for redirects to it.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, port: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split(' ').nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let big = "x".repeat(20 * 1024);
    let (status, location, body) = match path.split('/').collect::<Vec<_>>()[..] {
        ["", "status", code] => (code.parse().unwrap(), None, format!("status {code}")),
        ["", "redirect", "0"] => (200, None, "arrived".to_string()),
        ["", "redirect", n] => {
            let next = n.parse::<u32>().unwrap() - 1;
            (302, Some(format!("/redirect/{next}")), String::new())
        }
        ["", "elsewhere"] => (
            302,
            Some(format!("http://localhost:{port}/status/200")),
            big,
        ),
        ["", "big"] => (200, None, big),
        ["", "headers"] => (200, None, head.clone()),
        ["", "slow"] => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (200, None, String::new())
        }
        _ => (404, None, "not found".to_string()),
    };
    let location = location
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 {status} X\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}
