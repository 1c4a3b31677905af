//! Port forwarding (upstream kubelet/cri/streaming/portforward): each forwarded connection is
//! one Backend::port_forward call; failures are written to the connection's error stream.

pub mod spdy;

use crate::backend::BackendError;

/// The SPDY subprotocol (upstream portforward.SupportedProtocols).
pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";

/// Upstream's message; the CRI server passes the sandbox id as the pod and no uid.
pub fn forward_error(port: u16, sandbox_id: &str, err: &BackendError) -> String {
    format!("error forwarding port {port} to pod {sandbox_id}, uid : {err}")
}

/// Parses the `port` query values ("80", "80,443", repeated) as upstream NewV4Options does.
pub fn parse_ports<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for part in value.split(',') {
            let port: u16 = part
                .parse()
                .map_err(|e| format!("unable to parse {value:?} as a port: {e}"))?;
            if port == 0 {
                return Err(format!("port {value:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}
