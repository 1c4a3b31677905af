//! The paths the real API server proxies to a kubelet: pods/NAME/{log,exec,attach,portforward}
//! and nodes/NAME/proxy/PATH. The kubelet is the node's InternalIP (else Hostname) at its
//! status.daemonEndpoints.kubeletEndpoint.Port, reached over HTTPS with the client
//! certificate kube-apiserver-kubelet-client (O=system:masters) from the cluster CA, without
//! verifying the kubelet's serving certificate (no --kubelet-certificate-authority).
//! Upgrades (exec, attach, port-forward) are spliced both ways once the kubelet answers 101.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderName, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::ca::{CaError, TestCa};
use crate::error::ApiError;
use crate::meta;
use crate::resources;
use crate::server::AppState;

/// The kubelet port when a node does not report one (--kubelet-port's default).
const DEFAULT_KUBELET_PORT: u64 = 10250;

/// A path this module serves.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyPath {
    Pod {
        namespace: String,
        name: String,
        /// log, exec, attach or portforward.
        subresource: String,
    },
    Node {
        name: String,
        /// The path on the kubelet, starting with '/'.
        path: String,
    },
}

/// The proxied path `path` addresses, if any.
pub fn route(path: &str) -> Option<ProxyPath> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub]
            if matches!(*sub, "log" | "exec" | "attach" | "portforward") =>
        {
            Some(ProxyPath::Pod {
                namespace: ns.to_string(),
                name: name.to_string(),
                subresource: sub.to_string(),
            })
        }
        ["api", "v1", "nodes", name, "proxy", rest @ ..] => Some(ProxyPath::Node {
            name: name.to_string(),
            path: format!("/{}", rest.join("/")),
        }),
        _ => None,
    }
}

/// The TLS client setup for kubelets.
pub fn kubelet_client_config(ca: &TestCa) -> Result<Arc<rustls::ClientConfig>, CaError> {
    let issued = ca.issue_client_cert(
        "kube-apiserver-kubelet-client",
        &["system:masters".to_string()],
    )?;
    let invalid = |e: &dyn std::fmt::Display| CaError::InvalidRequest(e.to_string());
    let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).map_err(|e| invalid(&e))?;
    let mut config = kubelet_tls::insecure_client_builder()
        .map_err(|e| invalid(&e))?
        .with_client_auth_cert(chain, key)
        .map_err(|e| invalid(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn resource(plural: &str) -> &'static resources::Resource {
    resources::find("", "v1", plural).expect("pods and nodes are served")
}

/// The kubelet's host and port for node `name`.
fn kubelet_address(state: &AppState, name: &str) -> Result<(String, u64), ApiError> {
    let node = state.store.get(resource("nodes"), "", name)?;
    let addresses = meta::at(&node, "status.addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let address_of = |kind: &str| {
        addresses.iter().find_map(|a| {
            (a.get("type").and_then(Value::as_str) == Some(kind))
                .then(|| a.get("address").and_then(Value::as_str))
                .flatten()
                .map(str::to_string)
        })
    };
    let host = address_of("InternalIP")
        .or_else(|| address_of("Hostname"))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "no preferred addresses found; known addresses: {}",
                Value::Array(addresses.clone())
            ))
        })?;
    let port = meta::at(&node, "status.daemonEndpoints.kubeletEndpoint.Port")
        .and_then(Value::as_u64)
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((host, port))
}

fn truthy(params: &HashMap<String, Vec<String>>, key: &str) -> bool {
    params
        .get(key)
        .and_then(|v| v.last())
        .is_some_and(|v| matches!(v.as_str(), "true" | "1" | "True"))
}

fn first<'a>(params: &'a HashMap<String, Vec<String>>, key: &str) -> Option<&'a str> {
    params.get(key).and_then(|v| v.first()).map(String::as_str)
}

/// The query parameters, repeated ones kept (exec's command).
fn parse_query(query: &str) -> HashMap<String, Vec<String>> {
    let mut params: HashMap<String, Vec<String>> = HashMap::new();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    for (k, v) in pairs {
        params.entry(k).or_default().push(v);
    }
    params
}

/// The container a pod subresource addresses: the one named, else the only one.
fn container(
    pod: &Value,
    name: &str,
    params: &HashMap<String, Vec<String>>,
) -> Result<String, ApiError> {
    if let Some(c) = first(params, "container").filter(|c| !c.is_empty()) {
        return Ok(c.to_string());
    }
    let names: Vec<&str> = meta::at(pod, "spec.containers")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    match names.as_slice() {
        [only] => Ok(only.to_string()),
        _ => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// The kubelet node and path (with query) a request goes to, as upstream's *Location helpers.
fn location(
    state: &AppState,
    target: &ProxyPath,
    query: &str,
) -> Result<(String, String), ApiError> {
    let params = parse_query(query);
    let (namespace, name, subresource) = match target {
        ProxyPath::Node { name, path } => {
            let path = if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{query}")
            };
            return Ok((name.clone(), path));
        }
        ProxyPath::Pod {
            namespace,
            name,
            subresource,
        } => (namespace, name, subresource),
    };
    let pod = state.store.get(resource("pods"), namespace, name)?;
    let node = meta::str_at(&pod, "spec.nodeName")
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let mut out: Vec<(&str, String)> = Vec::new();
    let path = match subresource.as_str() {
        "log" => {
            let c = container(&pod, name, &params)?;
            for flag in ["follow", "previous", "timestamps"] {
                if truthy(&params, flag) {
                    out.push((flag, "true".into()));
                }
            }
            for key in ["sinceSeconds", "sinceTime", "tailLines", "limitBytes"] {
                if let Some(v) = first(&params, key) {
                    out.push((key, v.to_string()));
                }
            }
            format!("/containerLogs/{namespace}/{name}/{c}")
        }
        "exec" | "attach" => {
            let c = container(&pod, name, &params)?;
            let streams = [
                ("stdin", "input"),
                ("stdout", "output"),
                ("stderr", "error"),
            ];
            if !streams.iter().any(|(p, _)| truthy(&params, p)) {
                return Err(ApiError::BadRequest(
                    "you must specify at least 1 of stdin, stdout, stderr".into(),
                ));
            }
            for (param, kubelet_param) in streams.into_iter().chain([("tty", "tty")]) {
                if truthy(&params, param) {
                    out.push((kubelet_param, "1".into()));
                }
            }
            if subresource == "exec" {
                for command in params.get("command").into_iter().flatten() {
                    out.push(("command", command.clone()));
                }
            }
            let kind = if subresource == "exec" {
                "exec"
            } else {
                "attach"
            };
            format!("/{kind}/{namespace}/{name}/{c}")
        }
        _ => {
            for port in params.get("ports").into_iter().flatten() {
                out.push(("port", port.clone()));
            }
            format!("/portForward/{namespace}/{name}")
        }
    };
    let query = serde_urlencoded::to_string(&out).unwrap_or_default();
    Ok((
        node,
        if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        },
    ))
}

/// Headers that belong to one hop, dropped unless the request upgrades.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::UPGRADE,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    HeaderName::from_static("keep-alive"),
];

/// Whether nodes/NAME/proxy may reach `host`: upstream's proxyutil.IsProxyableIP refuses
/// loopback and link-local addresses (pods' log, exec and port-forward are not checked).
fn proxyable(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            !(ip.is_loopback()
                || ip.is_link_local()
                || ip.octets()[0] == 224 && ip.octets()[1] == 0 && ip.octets()[2] == 0)
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || first & 0xffc0 == 0xfe80
                || first & 0xff0f == 0xff02
                || first & 0xff0f == 0xff01)
        }
        Err(_) => true,
    }
}

/// Forwards `req` to the kubelet behind `target`.
pub async fn forward(
    state: &AppState,
    target: ProxyPath,
    req: Request,
) -> Result<Response, ApiError> {
    let (node, path) = location(state, &target, req.uri().query().unwrap_or_default())?;
    let (host, port) = kubelet_address(state, &node)?;
    if matches!(target, ProxyPath::Node { .. }) && !proxyable(&host) {
        return Err(ApiError::BadRequest("address not allowed".into()));
    }
    let unreachable =
        |e: &dyn std::fmt::Display| ApiError::Internal(format!("error dialing backend: {e}"));
    let tcp = TcpStream::connect((host.as_str(), port as u16))
        .await
        .map_err(|e| unreachable(&e))?;
    let server_name = ServerName::try_from(host.clone()).map_err(|e| unreachable(&e))?;
    let tls = TlsConnector::from(state.cluster.kubelet_tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended with an error");
        }
    });

    let mut req = req;
    let upgrading = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut out = http::Request::builder()
        .method(parts.method)
        .uri(path)
        .body(body)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    for (name, value) in &parts.headers {
        let dropped = *name == header::HOST
            || *name == header::AUTHORIZATION
            || (!upgrading && HOP_BY_HOP.contains(name));
        if !dropped {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    let host_header = format!("{host}:{port}");
    out.headers_mut().insert(
        header::HOST,
        host_header
            .parse()
            .map_err(|_| unreachable(&"invalid kubelet address"))?,
    );
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| unreachable(&e))?;

    if let (StatusCode::SWITCHING_PROTOCOLS, Some(client_upgrade)) = (resp.status(), client_upgrade)
    {
        let kubelet_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, kubelet_upgrade) {
                Ok((client, kubelet)) => {
                    let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
                        tracing::debug!(error = %e, "upgraded stream ended with an error");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = resp.into_parts();
    for name in &HOP_BY_HOP {
        parts.headers.remove(name);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/api/v1/namespaces/default/pods/web/log"),
            Some(ProxyPath::Pod {
                namespace: "default".into(),
                name: "web".into(),
                subresource: "log".into()
            })
        );
        assert_eq!(
            route("/api/v1/nodes/n1/proxy/stats/summary"),
            Some(ProxyPath::Node {
                name: "n1".into(),
                path: "/stats/summary".into()
            })
        );
        assert_eq!(route("/api/v1/namespaces/default/pods/web/status"), None);
        assert_eq!(route("/api/v1/nodes/n1"), None);
    }
}
