//! The node's name and address when flags do not give them (upstream nodeutil.GetHostname
//! and the NodeAddress setter's detection).

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;

use crate::NodeStatusError;

const KERNEL_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// The OS hostname, trimmed and lowercased as upstream, which --hostname-override replaces.
pub fn default_hostname() -> Result<String, NodeStatusError> {
    std::fs::read_to_string(KERNEL_HOSTNAME)
        .map(|name| name.trim().to_lowercase())
        .map_err(|source| NodeStatusError::ReadHost {
            path: PathBuf::from(KERNEL_HOSTNAME),
            source,
        })
}

/// The node IP when --node-ip is not set: the first address the hostname resolves to that is
/// neither loopback, link-local nor unspecified, else the source address of the default
/// route.
pub fn detect_node_ip(hostname: &str) -> Option<IpAddr> {
    let resolved = (hostname, 0)
        .to_socket_addrs()
        .into_iter()
        .flatten()
        .map(|addr| addr.ip())
        .find(|ip| usable(*ip));
    resolved.or_else(default_route_ip)
}

fn usable(ip: IpAddr) -> bool {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    !ip.is_loopback() && !ip.is_unspecified() && !link_local
}

/// The address the kernel would send from towards the rest of the world; connecting a UDP
/// socket only picks a route, no packet leaves.
fn default_route_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 53)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    usable(ip).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_has_a_name() {
        let name = default_hostname().expect("a hostname");
        assert!(!name.is_empty());
        assert_eq!(name, name.to_lowercase());
    }

    #[test]
    fn localhost_alone_is_not_a_node_ip() {
        assert!(!usable("127.0.0.1".parse().expect("ip")));
        assert!(!usable("169.254.1.1".parse().expect("ip")));
        assert!(usable("10.0.0.1".parse().expect("ip")));
        if let Some(ip) = detect_node_ip("localhost") {
            assert!(
                usable(ip),
                "{ip} is the default route's source, never loopback"
            );
        }
    }
}
