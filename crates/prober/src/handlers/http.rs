//! The httpGet handler (upstream pkg/probe/http): one GET per probe on a fresh connection,
//! redirects followed only on the same host and at most ten requests deep, 200-399 success.

use super::port::{join_host_port, resolve_container_port};
use super::tcp::connect;
use super::{HandlerError, MAX_OUTPUT_BYTES, Outcome, truncate_output};
use crate::types::ProbeResult;
use bytes::Bytes;
use http::header::{ACCEPT, CONNECTION, HOST, LOCATION, REFERER, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use url::Url;

/// Upstream's User-Agent: "kube-probe/<major>.<minor>" of the kubelet it mimics.
pub const USER_AGENT_VALUE: &str = "kube-probe/1.32";
/// Go's http.Client default, which upstream's redirect checker keeps.
const MAX_REQUESTS: usize = 10;

/// A GET request built from an httpGet action.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub url: Url,
    /// The headers to send, without Host.
    pub headers: HeaderMap,
    /// A Host header the probe sets, which replaces the URL's authority.
    pub host: Option<HeaderValue>,
}

/// Builds the request as upstream's `NewRequestForHTTPGetAction`: scheme defaults to http, host to
/// the pod IP; the headers as given, with User-Agent and `Accept: */*` unless the probe sets its
/// own (an empty Accept means none).
pub fn build_request(
    action: &HTTPGetAction,
    container: &Container,
    pod_ip: Option<&str>,
) -> Result<ProbeRequest, HandlerError> {
    let scheme = action
        .scheme
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("http")
        .to_ascii_lowercase();
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => host,
        None => pod_ip.ok_or(HandlerError::NoPodIp)?,
    };
    let port = resolve_container_port(&action.port, container)?;
    let path = action.path.as_deref().unwrap_or_default();
    let separator = if path.starts_with('/') || path.is_empty() {
        ""
    } else {
        "/"
    };
    let raw = format!("{scheme}://{}{separator}{path}", join_host_port(host, port));
    let url = Url::parse(&raw).map_err(|source| HandlerError::Url { url: raw, source })?;

    let mut headers = HeaderMap::new();
    for header in action.http_headers.as_deref().unwrap_or_default() {
        let invalid = || HandlerError::Header(header.name.clone());
        let name = HeaderName::try_from(header.name.as_str()).map_err(|_| invalid())?;
        let value = HeaderValue::try_from(header.value.as_str()).map_err(|_| invalid())?;
        headers.append(name, value);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    }
    match headers.get(ACCEPT) {
        None => {
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        Some(value) if value.is_empty() => {
            headers.remove(ACCEPT);
        }
        Some(_) => {}
    }
    let host = headers.remove(HOST);
    Ok(ProbeRequest { url, headers, host })
}

/// Sends probe requests. Cheap to share: it holds only the TLS configuration.
#[derive(Clone)]
pub struct HttpProber {
    tls: TlsConnector,
}

impl Default for HttpProber {
    fn default() -> Self {
        HttpProber {
            // As upstream's InsecureSkipVerify: pods serve self-signed certificates.
            tls: TlsConnector::from(Arc::new(
                kubelet_tls::insecure_client_builder()
                    .expect("the ring provider supports the default TLS versions")
                    .with_no_client_auth(),
            )),
        }
    }
}

/// A response as the probe sees it: the status and at most 10 KiB of the body.
struct Response {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

impl HttpProber {
    /// One GET with its redirects, as a lifecycle hook sends it: only a transport failure or the
    /// timeout is an error, whatever the status code (upstream runHTTPHandler).
    pub async fn get(&self, request: &ProbeRequest, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.follow(request)).await {
            Err(_) => Err(format!(
                "Get {:?}: context deadline exceeded",
                request.url.as_str()
            )),
            Ok(Err((url, err))) => Err(format!("Get {:?}: {err}", url.as_str())),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Probes `request` with `timeout` covering every request, redirect and the body read.
    /// Transport errors and timeouts are failures, as upstream's `DoHTTPProbe`.
    pub async fn probe(&self, request: &ProbeRequest, timeout: Duration) -> Outcome {
        let failure = |output| Outcome {
            result: ProbeResult::Failure,
            output,
        };
        let response = match tokio::time::timeout(timeout, self.follow(request)).await {
            Err(_) => {
                return failure(format!(
                    "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    request.url.as_str()
                ));
            }
            Ok(Err((url, err))) => return failure(format!("Get {:?}: {err}", url.as_str())),
            Ok(Ok(response)) => response,
        };
        let status = response.status.as_u16();
        if (200..400).contains(&status) {
            let body = truncate_output(&response.body);
            if status >= 300 {
                tracing::debug!(url = %request.url, status, "probe terminated redirects");
                return Outcome {
                    result: ProbeResult::Warning,
                    output: format!("Probe terminated redirects, Response body: {body}"),
                };
            }
            return Outcome {
                result: ProbeResult::Success,
                output: body,
            };
        }
        tracing::debug!(url = %request.url, status, body = %truncate_output(&response.body), "HTTP probe failed");
        // Upstream keeps the body out of the user-facing message (kubernetes issue 99425).
        failure(format!("HTTP probe failed with statuscode: {status}"))
    }

    /// Go's http.Client with upstream's redirect checker: a redirect to another host is not
    /// followed (its response is the answer), and the tenth redirect is an error.
    async fn follow(&self, request: &ProbeRequest) -> Result<Response, (Url, String)> {
        let first_host = request.url.host_str().map(str::to_string);
        let mut url = request.url.clone();
        let mut headers = request.headers.clone();
        let mut host = request.host.clone();
        let mut sent = 0;
        loop {
            let response = self
                .send(&url, &headers, host.as_ref())
                .await
                .map_err(|err| (url.clone(), err))?;
            sent += 1;
            let Some(location) = response
                .location
                .as_deref()
                .filter(|_| is_followed_redirect(response.status))
            else {
                return Ok(response);
            };
            let next = url.join(location).map_err(|err| {
                (
                    url.clone(),
                    format!("failed to parse Location header {location:?}: {err}"),
                )
            })?;
            if next.host_str().map(str::to_string) != first_host {
                return Ok(response);
            }
            if sent >= MAX_REQUESTS {
                return Err((next, format!("stopped after {MAX_REQUESTS} redirects")));
            }
            // Go keeps a custom Host only through relative redirects, and sets a Referer.
            if Url::parse(location).is_ok() {
                host = None;
            }
            if !(url.scheme() == "https" && next.scheme() == "http") {
                let mut referer = url.clone();
                let _ = referer.set_username("");
                let _ = referer.set_password(None);
                referer.set_fragment(None);
                if let Ok(value) = HeaderValue::try_from(referer.as_str()) {
                    headers.insert(REFERER, value);
                }
            }
            url = next;
        }
    }

    /// One GET on a new connection (upstream disables keep-alives).
    async fn send(
        &self,
        url: &Url,
        headers: &HeaderMap,
        host: Option<&HeaderValue>,
    ) -> Result<Response, String> {
        let hostname = url.host_str().ok_or("URL has no host")?;
        let port = url.port_or_known_default().ok_or("URL has no port")?;
        let addr = join_host_port(hostname.trim_matches(['[', ']']), port);
        // The connect is bounded by the probe's overall timeout.
        let stream = connect(&addr)
            .await
            .map_err(|err| format!("dial tcp {addr}: {err}"))?;

        let authority = HeaderValue::try_from(addr.as_str()).map_err(|e| e.to_string())?;
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let mut builder = Request::get(target);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .header(HOST, host.cloned().unwrap_or(authority))
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;

        match url.scheme() {
            "https" => {
                let name = ServerName::try_from(hostname.trim_matches(['[', ']']).to_string())
                    .map_err(|e| e.to_string())?;
                let tls = self
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(|e| e.to_string())?;
                exchange(tls, request).await
            }
            "http" => exchange(stream, request).await,
            other => Err(format!("unsupported protocol scheme {other:?}")),
        }
    }
}

/// The statuses Go's client follows (when a Location is given).
fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

async fn exchange<S>(stream: S, request: Request<Empty<Bytes>>) -> Result<Response, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_at_most(response.into_body(), MAX_OUTPUT_BYTES).await?;
        Ok(Response {
            status,
            location,
            body,
        })
    }
    .await;
    // The rest of the body is not wanted: drop the connection rather than drain it.
    driver.abort();
    result
}

/// Reads the body up to `limit` bytes; a longer body is cut, which is not an error.
async fn read_at_most(mut body: hyper::body::Incoming, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
            out.extend_from_slice(&data);
        }
    }
    out.truncate(limit);
    Ok(out)
}
