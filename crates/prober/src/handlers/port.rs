//! Resolving a probe's port (upstream pkg/probe `ResolveContainerPort`).

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PortError {
    #[error("port {0} not found and it is not a number")]
    UnknownName(String),
    #[error("invalid port number: {0}")]
    OutOfRange(i64),
}

/// A port given by number, by the name of one of the container's ports, or (upstream's last
/// resort) by a number written as a string.
pub fn resolve_container_port(port: &IntOrString, container: &Container) -> Result<u16, PortError> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container
                .ports
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()));
            match named {
                Some(p) => i64::from(p.container_port),
                None => name
                    .parse::<i64>()
                    .map_err(|_| PortError::UnknownName(name.clone()))?,
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|&p| p > 0)
        .ok_or(PortError::OutOfRange(number))
}

/// `host:port`, with brackets around an IPv6 host (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn container() -> Container {
        Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn resolves_numbers_names_and_numeric_strings() {
        let c = container();
        assert_eq!(resolve_container_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_container_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(
            resolve_container_port(&IntOrString::String("9090".into()), &c),
            Ok(9090)
        );
    }

    #[test]
    fn rejects_unknown_names_and_out_of_range_numbers() {
        let c = container();
        assert_eq!(
            resolve_container_port(&IntOrString::String("grpc".into()), &c),
            Err(PortError::UnknownName("grpc".into()))
        );
        assert_eq!(
            resolve_container_port(&IntOrString::Int(0), &c),
            Err(PortError::OutOfRange(0))
        );
        assert_eq!(
            resolve_container_port(&IntOrString::Int(65536), &c),
            Err(PortError::OutOfRange(65536))
        );
    }

    #[test]
    fn brackets_ipv6_hosts() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    }
}
