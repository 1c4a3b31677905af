//! Shared by the end-to-end tests: a fake backend and a minimal SPDY client.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use runtime_streaming::spdy::session::{self, Connection, Incoming, Role, SessionConfig};
use runtime_streaming::{Backend, BackendError, Config, ExecIo, PortStream, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Commands the fake backend understands:
/// - `echo`: stdin to stdout until end of file.
/// - `count`: reads stdin to its end and prints "<bytes> <checksum>".
/// - `exit N`: writes "bye" to stderr and exits with N.
/// - `fail`: an error that is not an exit code.
/// - `tty`: prints each resize as "WxH\n", the first two, then echoes stdin.
/// - `big N`: writes N bytes of a pattern to stdout.
///
/// Attach echoes. Port 1 echoes, port 2 is refused.
pub struct FakeBackend;

pub fn pattern(i: usize) -> u8 {
    (i * 31 % 251) as u8
}

pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| {
        acc.wrapping_mul(131).wrapping_add(u64::from(b))
    })
}

async fn echo(io: &mut ExecIo) {
    if let (Some(stdin), Some(stdout)) = (io.stdin.as_mut(), io.stdout.as_mut()) {
        let _ = tokio::io::copy(stdin, stdout).await;
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn exec(
        &self,
        _container_id: &str,
        cmd: Vec<String>,
        mut io: ExecIo,
    ) -> Result<(), BackendError> {
        match cmd.first().map(String::as_str) {
            Some("echo") => echo(&mut io).await,
            Some("count") => {
                let mut all = Vec::new();
                io.stdin
                    .as_mut()
                    .unwrap()
                    .read_to_end(&mut all)
                    .await
                    .unwrap();
                let line = format!("{} {}", all.len(), checksum(&all));
                io.stdout
                    .as_mut()
                    .unwrap()
                    .write_all(line.as_bytes())
                    .await
                    .unwrap();
            }
            Some("exit") => {
                io.stderr.as_mut().unwrap().write_all(b"bye").await.unwrap();
                return Err(BackendError::NonZeroExit(cmd[1].parse().unwrap()));
            }
            Some("fail") => return Err(BackendError::Failed("no such thing".into())),
            Some("tty") => {
                let resize = io.resize.as_mut().unwrap();
                for _ in 0..2 {
                    let size = resize.recv().await.unwrap();
                    let line = format!("{}x{}\n", size.width, size.height);
                    io.stdout
                        .as_mut()
                        .unwrap()
                        .write_all(line.as_bytes())
                        .await
                        .unwrap();
                }
                echo(&mut io).await;
            }
            Some("big") => {
                let n: usize = cmd[1].parse().unwrap();
                let data: Vec<u8> = (0..n).map(pattern).collect();
                io.stdout.as_mut().unwrap().write_all(&data).await.unwrap();
            }
            other => return Err(BackendError::NotFound(format!("unknown command {other:?}"))),
        }
        Ok(())
    }

    async fn attach(&self, _container_id: &str, mut io: ExecIo) -> Result<(), BackendError> {
        echo(&mut io).await;
        Ok(())
    }

    async fn port_forward(
        &self,
        _sandbox_id: &str,
        port: u16,
        stream: Box<dyn PortStream>,
    ) -> Result<(), BackendError> {
        match port {
            1 => {
                let (mut r, mut w) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
                Ok(())
            }
            _ => Err(BackendError::Failed("connection refused".into())),
        }
    }
}

pub async fn server() -> Server {
    let config = Config {
        stream_creation_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let server = Server::new(config, Arc::new(FakeBackend));
    server.start().await.unwrap();
    server
}

/// Splits "http://host:port/path" into the address and path.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let slash = rest.find('/').unwrap();
    (rest[..slash].to_owned(), rest[slash..].to_owned())
}

pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub stream: TcpStream,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    pub async fn body(mut self) -> String {
        let mut body = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            self.stream.read_to_end(&mut body),
        )
        .await;
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// Sends an upgrade request by hand, as client-go's SPDY round tripper does, and reads the
/// response head (byte by byte, so no SPDY byte is consumed).
pub async fn request(url: &str, extra_headers: &[(&str, &str)]) -> HttpReply {
    let (address, path) = split_url(url);
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\n");
    for (name, value) in extra_headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    HttpReply {
        status,
        head,
        stream,
    }
}

/// Upgrades to SPDY and starts a client session; returns it with the response head.
pub async fn spdy_connect(url: &str, protocol: &str) -> (Connection, Incoming, String) {
    let HttpReply {
        status,
        head,
        stream,
    } = request(
        url,
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", protocol),
        ],
    )
    .await;
    assert_eq!(status, 101, "{head}");
    let config = SessionConfig {
        peer_flow_control: true,
        ..SessionConfig::default()
    };
    let (conn, incoming) = session::start(stream, Role::Client, config);
    (conn, incoming, head)
}
