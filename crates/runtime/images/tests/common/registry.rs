//! A private Debian `docker-registry` on a free loopback port, with its own config, storage and
//! log in a temp dir, optionally with htpasswd Basic auth or token auth (see `token.rs`); images
//! pushed into it with skopeo.
//! Killed (by its PID, through `Child`) when dropped.
#![allow(dead_code)] // Each integration test uses a part.

use super::token::{ISSUER, SERVICE, TokenServer};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY: &str = "/usr/bin/docker-registry";
const SKOPEO: &str = "skopeo";

pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    log: PathBuf,
    creds: Option<(String, String)>,
}

impl Registry {
    /// Starts a registry, with Basic auth for `creds` when given; fails (never skips) when the
    /// registry binary is missing or does not come up.
    pub fn start(creds: Option<(&str, &str)>) -> Registry {
        Self::start_with(creds, false)
    }

    /// Starts a registry serving HTTPS with a certificate for 127.0.0.1 signed by a test CA
    /// (`ca.pem` in its dir), made with the openssl command.
    pub fn start_tls() -> Registry {
        Self::start_with(None, true)
    }

    /// Starts a registry with token auth: `token`'s server is the realm, its certificate
    /// verifies the tokens, and its Basic credentials push.
    pub fn start_token(token: &TokenServer) -> Registry {
        let mut registry = Self::start_config(false, |_| {
            format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                token.realm(),
                token.cert().display()
            )
        });
        registry.creds = Some(token.credentials());
        registry
    }

    fn start_with(creds: Option<(&str, &str)>, tls: bool) -> Registry {
        let mut registry = Self::start_config(tls, |dir| match creds {
            Some((user, password)) => {
                let htpasswd = dir.join("htpasswd");
                let hash = bcrypt::hash(password, 5).unwrap();
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        });
        registry.creds = creds.map(|(u, p)| (u.to_string(), p.to_string()));
        registry
    }

    /// Starts a registry whose config's auth section is what `auth` returns (given the
    /// registry's dir, for the files it needs).
    fn start_config(tls: bool, auth: impl FnOnce(&Path) -> String) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if tls {
            make_certificates(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\n",
                dir.path().display()
            ));
        }
        // After `http:`'s tls settings: a top-level section.
        config.push_str(&auth(dir.path()));
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REGISTRY} (package docker-registry): {e}"));
        let mut registry = Registry {
            child,
            port,
            dir,
            log,
            creds: None,
        };
        registry.wait_ready();
        registry
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Polls `/v2/` until the registry answers (200, or 401 with auth).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited with {status}: {}", self.log_text());
            }
            if self.dir.path().join("cert.pem").exists() {
                // Any TCP answer will do: the TLS handshake is the pull's to test.
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
            } else if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on port {}: {}",
                self.port,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Pushes an OCI archive as `127.0.0.1:PORT/repo:tag` with skopeo (every platform of a
    /// manifest list).
    pub fn push(&self, archive: &Path, repo_tag: &str) {
        let policy = self.dir.path().join("policy.json");
        std::fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        let mut cmd = Command::new(SKOPEO);
        cmd.arg("--policy").arg(&policy).args([
            "copy",
            "--quiet",
            "--all",
            "--dest-tls-verify=false",
        ]);
        if let Some((u, p)) = &self.creds {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        }
        let out = cmd
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .unwrap_or_else(|e| panic!("cannot run skopeo: {e}"));
        assert!(
            out.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// How many GETs of blob `digest` of `repo` the registry served (from its access log).
    pub fn blob_gets(&self, repo: &str, digest: &str) -> usize {
        let needle = format!("\"GET /v2/{repo}/blobs/{digest}");
        self.log_text().matches(&needle).count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA (`ca.pem`) and a server certificate for IP 127.0.0.1 (`cert.pem`, `key.pem`) in `dir`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "req.pem",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "req.pem",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A certs.d dir whose `HOST/hosts.toml` files hold the given texts.
pub fn certs_d(entries: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (host, text) in entries {
        std::fs::create_dir_all(dir.path().join(host)).unwrap();
        std::fs::write(dir.path().join(host).join("hosts.toml"), text).unwrap();
    }
    dir
}
