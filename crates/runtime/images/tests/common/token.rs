//! A small registry token server (the distribution "token" auth scheme) on a free loopback port,
//! served by a thread: `GET /token` with Basic credentials, and containerd's OAuth2 `POST /token`
//! with a refresh token. It issues JWTs signed RS256 (by the openssl command) with a key and
//! self-signed certificate made by openssl in its temp dir; the registry trusts that
//! certificate (`rootcertbundle`) and finds it in each token's `x5c` header.
#![allow(dead_code)] // Each integration test uses a part.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-issuer";

/// What the server accepts and how it signs.
struct Issuer {
    user: String,
    password: String,
    refresh_token: String,
    key: PathBuf,
    /// The certificate, base64 DER, for the `x5c` header.
    cert_der: String,
    serial: AtomicU64,
}

pub struct TokenServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    issuer: Arc<Issuer>,
    /// One line per request: `GET user=alice ok`, `POST grant_type=refresh_token ... denied`.
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    /// Accepts Basic `user:password`, and `refresh_token` in the OAuth2 POST.
    pub fn start(user: &str, password: &str, refresh_token: &str) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token-key.pem",
                "-out",
                "token-cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=test token issuer",
            ],
        );
        openssl(
            dir.path(),
            &[
                "x509",
                "-in",
                "token-cert.pem",
                "-outform",
                "DER",
                "-out",
                "token-cert.der",
            ],
        );
        let cert_der = STANDARD.encode(std::fs::read(dir.path().join("token-cert.der")).unwrap());
        let issuer = Arc::new(Issuer {
            user: user.to_string(),
            password: password.to_string(),
            refresh_token: refresh_token.to_string(),
            key: dir.path().join("token-key.pem"),
            cert_der,
            serial: AtomicU64::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (issuer, requests, stop) = (issuer.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (issuer, requests) = (issuer.clone(), requests.clone());
                    std::thread::spawn(move || serve(stream, &issuer, &requests));
                }
            })
        };
        TokenServer {
            port,
            dir,
            issuer,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate the registry verifies tokens with.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("token-cert.pem")
    }

    pub fn credentials(&self) -> (String, String) {
        (self.issuer.user.clone(), self.issuer.password.clone())
    }

    /// A token for `sub` granting `actions` on repository `name`, as the server issues them.
    pub fn mint(&self, sub: &str, name: &str, actions: &[&str]) -> String {
        let access = vec![serde_json::json!({
            "type": "repository", "name": name, "actions": actions,
        })];
        self.issuer.sign(sub, access)
    }

    /// The requests served so far, one line each.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the flag and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Issuer {
    fn sign(&self, sub: &str, access: Vec<serde_json::Value>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der]});
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": sub,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now - 10,
            "jti": format!("token-{}", self.serial.fetch_add(1, Ordering::SeqCst)),
            "access": access,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "openssl dgst -sign: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(&out.stdout))
    }
}

/// Serves one request on `stream` (the clients close or reuse the connection; one request per
/// connection is enough, as every answer says `Connection: close`).
fn serve(stream: TcpStream, issuer: &Issuer, requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim().to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value),
                "content-length" => length = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let (status, answer, note) = match method.as_str() {
        "GET" => {
            let params = form(query);
            let user = authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Basic "))
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok());
            match user.as_deref().and_then(|u| u.split_once(':')) {
                Some((u, p)) if u == issuer.user && p == issuer.password => {
                    let token = issuer.sign(u, access(&params));
                    let json = serde_json::json!({
                        "token": token, "access_token": token, "expires_in": 300,
                    });
                    (200, json, format!("GET user={u} ok"))
                }
                Some((u, _)) => (401, denied(), format!("GET user={u} denied")),
                None => (401, denied(), "GET anonymous denied".to_string()),
            }
        }
        "POST" => {
            let params = form(&String::from_utf8_lossy(&body));
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default()
            };
            let note = format!(
                "POST grant_type={} client_id={} service={} scope={}",
                get("grant_type"),
                get("client_id"),
                get("service"),
                get("scope")
            );
            if get("grant_type") == "refresh_token"
                && get("refresh_token") == issuer.refresh_token
                && get("service") == SERVICE
            {
                let token = issuer.sign("refresh-user", access(&params));
                let json = serde_json::json!({
                    "access_token": token, "expires_in": 300, "scope": get("scope"),
                });
                (200, json, format!("{note} ok"))
            } else {
                (401, denied(), format!("{note} denied"))
            }
        }
        _ => (405, denied(), format!("{method} refused")),
    };
    requests.lock().unwrap().push(note);
    let body = serde_json::to_vec(&answer).unwrap();
    let reason = if status == 200 { "OK" } else { "Unauthorized" };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}

fn denied() -> serde_json::Value {
    serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication failed"}]})
}

/// The access a token grants: every `scope` asked for (`repository:NAME:ACTIONS`, several
/// separated by spaces), with the actions asked for.
fn access(params: &[(String, String)]) -> Vec<serde_json::Value> {
    params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({
                "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` (a query string too) into name/value pairs.
fn form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
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
}
