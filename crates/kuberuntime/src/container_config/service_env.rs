//! Service link variables (upstream pkg/kubelet/envvars `FromServices`): for each Service,
//! NAME_SERVICE_HOST, NAME_SERVICE_PORT (and one per named port), and the docker-link style
//! NAME_PORT, NAME_PORT_<port>_<PROTO>, ..._PROTO, ..._PORT, ..._ADDR.

use k8s_openapi::api::core::v1::Service;

/// Whether the Service has a cluster IP (not headless, not unallocated).
pub fn has_cluster_ip(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The variables of `services`, in their order; Services without a cluster IP give none.
pub fn from_services(services: &[Service]) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for svc in services.iter().filter(|s| has_cluster_ip(s)) {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let prefix = var_name(svc.metadata.name.as_deref().unwrap_or_default());
        let ports = spec.ports.as_deref().unwrap_or_default();
        vars.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        // Validation requires a port on a Service with a cluster IP; without one there is
        // nothing to name.
        let Some(first) = ports.first() else {
            continue;
        };
        let port_var = format!("{prefix}_SERVICE_PORT");
        vars.push((port_var.clone(), first.port.to_string()));
        for p in ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                vars.push((format!("{port_var}_{}", var_name(name)), p.port.to_string()));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let protocol = p
                .protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            let lower = protocol.to_lowercase();
            let url = format!("{lower}://{}", join_host_port(&ip, p.port));
            if i == 0 {
                // Docker special-cases the first port.
                vars.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, protocol.to_uppercase());
            vars.push((port_prefix.clone(), url));
            vars.push((format!("{port_prefix}_PROTO"), lower));
            vars.push((format!("{port_prefix}_PORT"), p.port.to_string()));
            vars.push((format!("{port_prefix}_ADDR"), ip.clone()));
        }
    }
    vars
}

/// Upper case, '-' as '_' (upstream makeEnvVariableName).
fn var_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// Go's net.JoinHostPort: brackets around an IPv6 address.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn service(name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    #[test]
    fn kubernetes_service_vars() {
        let svc = service(
            "kubernetes",
            "10.96.0.1",
            serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
        );
        let vars: BTreeMap<_, _> = from_services(&[svc]).into_iter().collect();
        let want: BTreeMap<String, String> = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(vars, want);
    }

    #[test]
    fn names_ports_protocols_and_headless() {
        let svc = service(
            "my-db",
            "fd00::10",
            serde_json::json!([
                {"port": 5432},
                {"name": "metrics-port", "port": 9187, "protocol": "UDP"}
            ]),
        );
        let headless = service("headless", "None", serde_json::json!([{"port": 80}]));
        let pending = service("pending", "", serde_json::json!([{"port": 80}]));
        let vars: BTreeMap<_, _> = from_services(&[headless, svc, pending])
            .into_iter()
            .collect();
        assert!(vars.keys().all(|k| k.starts_with("MY_DB_")), "{vars:?}");
        assert_eq!(vars["MY_DB_SERVICE_HOST"], "fd00::10");
        assert_eq!(vars["MY_DB_SERVICE_PORT"], "5432");
        assert_eq!(vars["MY_DB_SERVICE_PORT_METRICS_PORT"], "9187");
        assert_eq!(vars["MY_DB_PORT"], "tcp://[fd00::10]:5432");
        assert_eq!(vars["MY_DB_PORT_9187_UDP"], "udp://[fd00::10]:9187");
        assert_eq!(vars["MY_DB_PORT_9187_UDP_PROTO"], "udp");
        assert_eq!(vars["MY_DB_PORT_5432_TCP_ADDR"], "fd00::10");
        assert_eq!(vars.len(), 3 + 1 + 4 * 2);
    }
}
