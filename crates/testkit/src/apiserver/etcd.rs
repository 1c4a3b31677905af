//! A private etcd (Debian's etcd-server): its own data dir and loopback ports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::RealApiServerError;
use super::daemon::Daemon;
use crate::free_port;

/// How long etcd may take to answer /health.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Etcd {
    daemon: Daemon,
    client_port: u16,
}

impl Etcd {
    /// Starts etcd with its data under `dir` and waits until it is healthy.
    pub fn start(dir: &Path) -> Result<Self, RealApiServerError> {
        let data = dir.join("etcd");
        std::fs::create_dir(&data)?;
        // etcd refuses a data dir others may read.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
        let (client_port, peer_port) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new("etcd");
        command
            .arg("--name=test")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"));
        let daemon = Daemon::spawn("etcd", command, &dir.join("etcd.log"))?;
        let mut etcd = Etcd {
            daemon,
            client_port,
        };
        etcd.wait_healthy()?;
        Ok(etcd)
    }

    /// The client URL, for --etcd-servers.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn wait_healthy(&mut self) -> Result<(), RealApiServerError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self
                .request("GET", "/health", "")
                .is_ok_and(|body| body.contains("\"health\":\"true\""))
            {
                return Ok(());
            }
            if !self.daemon.is_running() || Instant::now() > deadline {
                return Err(RealApiServerError::NotReady {
                    what: self.daemon.name(),
                    log: self.daemon.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Compacts the history up to the current revision, so watches from older
    /// resourceVersions get 410 Gone.
    pub fn compact(&self) -> Result<(), RealApiServerError> {
        // Any range answers with the store's current revision in its header.
        let range = self.request("POST", "/v3/kv/range", r#"{"key":"AA=="}"#)?;
        let revision = range
            .split("\"revision\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or_else(|| RealApiServerError::Etcd(format!("no revision in {range}")))?;
        self.request(
            "POST",
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        )
        .map(drop)
    }

    /// One HTTP/1.0 request to the client port (etcd's JSON gateway); answers the body of a
    /// 200 response.
    fn request(&self, method: &str, path: &str, body: &str) -> Result<String, RealApiServerError> {
        let failed = |e: std::io::Error| RealApiServerError::Etcd(format!("{method} {path}: {e}"));
        let mut stream = TcpStream::connect(("127.0.0.1", self.client_port)).map_err(failed)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(failed)?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(failed)?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(failed)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        if head.split_whitespace().nth(1) != Some("200") {
            return Err(RealApiServerError::Etcd(format!(
                "{method} {path}: {response}"
            )));
        }
        Ok(body.to_string())
    }
}
