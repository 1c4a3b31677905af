//! Pod admission (upstream lifecycle predicate admit handler): a pod that does not fit the node is
//! rejected before anything of it starts, with the upstream reason.

use crate::cm::machine::MachineInfo;
use crate::cm::machine::{bytes, milli_cpu};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

fn reject(reason: &str, message: String) -> Rejection {
    Rejection {
        reason: reason.into(),
        message,
    }
}

/// The pod's effective request of a resource: the larger of the sum over app containers and the
/// largest init container (upstream resource helpers, without sidecars).
fn request(pod: &Pod, name: &str, parse: fn(&Quantity) -> u64) -> u64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(name))
            .map_or(0, parse)
    };
    let apps: u64 = spec.containers.iter().map(of).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    apps.max(init)
}

fn host_ports(pod: &Pod) -> Vec<(String, String, i32)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let hp = p.host_port.filter(|&h| h > 0)?;
            Some((
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.host_ip.clone().unwrap_or_default(),
                hp,
            ))
        })
        .collect()
}

/// Decides whether `pod` may run beside the `admitted` pods.
pub fn admit(
    pod: &Pod,
    admitted: &[&Pod],
    machine: &MachineInfo,
    max_pods: u32,
) -> Result<(), Rejection> {
    if admitted.len() as u64 + 1 > u64::from(max_pods) {
        return Err(reject(
            "OutOfpods",
            format!(
                "Node didn't have enough resource: pods, requested: 1, used: {}, capacity: {max_pods}",
                admitted.len()
            ),
        ));
    }
    for (name, parse, capacity) in [
        ("cpu", milli_cpu as fn(&Quantity) -> u64, machine.cpu_milli),
        ("memory", bytes, machine.memory_bytes),
    ] {
        let want = request(pod, name, parse);
        let used: u64 = admitted.iter().map(|p| request(p, name, parse)).sum();
        if want > 0 && used + want > capacity {
            return Err(reject(
                &format!("OutOf{name}"),
                format!(
                    "Node didn't have enough resource: {name}, requested: {want}, used: {used}, capacity: {capacity}"
                ),
            ));
        }
    }
    let taken: HashSet<_> = admitted.iter().flat_map(|p| host_ports(p)).collect();
    for (proto, ip, port) in host_ports(pod) {
        let clash = taken.iter().any(|(p2, ip2, port2)| {
            *p2 == proto
                && *port2 == port
                && (ip.is_empty()
                    || ip2.is_empty()
                    || ip == "0.0.0.0"
                    || ip2 == "0.0.0.0"
                    || ip == *ip2)
        });
        if clash {
            return Err(reject(
                "NodePorts",
                format!("Node didn't have free ports for the requested pod ports: {proto}/{port}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, containers: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name, "uid": name}, "spec": {"containers": containers}}),
        )
        .unwrap()
    }
    const M: MachineInfo = MachineInfo {
        cpu_milli: 2000,
        memory_bytes: 1 << 30,
    };

    #[test]
    fn max_pods() {
        let a = pod("a", json!([{"name": "c", "image": "i"}]));
        let b = pod("b", json!([{"name": "c", "image": "i"}]));
        assert!(admit(&b, &[], &M, 1).is_ok());
        assert_eq!(admit(&b, &[&a], &M, 1).unwrap_err().reason, "OutOfpods");
    }

    #[test]
    fn resources() {
        let big = pod(
            "big",
            json!([{"name": "c", "image": "i", "resources": {"requests": {"cpu": "3"}}}]),
        );
        let r = admit(&big, &[], &M, 110).unwrap_err();
        assert_eq!(r.reason, "OutOfcpu");
        assert!(r.message.contains("requested: 3000"), "{}", r.message);
        let mem = pod(
            "m",
            json!([{"name": "c", "image": "i", "resources": {"requests": {"memory": "600Mi"}}}]),
        );
        assert!(admit(&mem, &[], &M, 110).is_ok());
        assert_eq!(
            admit(&mem, &[&mem.clone()], &M, 110).unwrap_err().reason,
            "OutOfmemory"
        );
    }

    #[test]
    fn host_port_clash() {
        let a = pod(
            "a",
            json!([{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}]),
        );
        let b = pod(
            "b",
            json!([{"name": "c", "image": "i", "ports": [{"containerPort": 81, "hostPort": 8080}]}]),
        );
        let udp = pod(
            "u",
            json!([{"name": "c", "image": "i", "ports": [{"containerPort": 81, "hostPort": 8080, "protocol": "UDP"}]}]),
        );
        assert_eq!(admit(&b, &[&a], &M, 110).unwrap_err().reason, "NodePorts");
        assert!(admit(&udp, &[&a], &M, 110).is_ok());
    }
}
