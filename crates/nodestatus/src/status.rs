//! The Node status the kubelet reports (upstream defaultNodeStatusFuncs and nodeStatusHasChanged).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, NodeAddress, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{Timestamp, Unit};

use crate::conditions;
use crate::info::{KUBELET_VERSION, NodeInfoSource, PressureInputs};
use crate::machine::MachineFacts;
use crate::resources;

/// Resources a node must report before it can be Ready (upstream's ReadyCondition).
const REQUIRED_CAPACITY: [&str; 4] = ["cpu", "memory", "pods", "ephemeral-storage"];

/// Computes the status from `previous` (the Node's status in the API, if any): the fields the
/// kubelet owns are recomputed, the others (images, volumesAttached, ...) are kept, and so is
/// volumesInUse, which the status loop sets from the volumes.
pub fn node_status(
    info: &NodeInfoSource,
    machine: &MachineFacts,
    inputs: &PressureInputs,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    // The API keeps times to the second; a finer one would look like a change on every round.
    let now = Time(now.round(Unit::Second).unwrap_or(now));
    let mut status = previous.cloned().unwrap_or_default();
    status.addresses = Some(addresses(info));
    let capacity = resources::capacity(machine, info.max_pods);
    let missing: Vec<&str> = REQUIRED_CAPACITY
        .into_iter()
        .filter(|name| !capacity.contains_key(*name))
        .collect();
    status.capacity = Some(with_others_resources(status.capacity.take(), capacity));
    let allocatable =
        resources::allocatable(machine, info.max_pods, &info.reserved, &info.eviction_hard);
    status.allocatable = Some(with_others_resources(
        status.allocatable.take(),
        allocatable,
    ));
    status.node_info = Some(NodeSystemInfo {
        machine_id: machine.machine_id.clone(),
        system_uuid: machine.system_uuid.clone(),
        boot_id: machine.boot_id.clone(),
        kernel_version: machine.kernel_version.clone(),
        os_image: machine.os_image.clone(),
        container_runtime_version: info.runtime_version.clone(),
        kubelet_version: KUBELET_VERSION.to_string(),
        operating_system: std::env::consts::OS.to_string(),
        architecture: go_arch().to_string(),
        ..status.node_info.take().unwrap_or_default()
    });
    status.daemon_endpoints = Some(NodeDaemonEndpoints {
        kubelet_endpoint: Some(DaemonEndpoint {
            port: i32::from(info.kubelet_port),
        }),
    });
    let mut node_conditions = status.conditions.take().unwrap_or_default();
    conditions::update(&mut node_conditions, inputs, &missing, &now);
    status.conditions = Some(node_conditions);
    status
}

/// The machine's resources over the previous ones: extended resources others advertised stay,
/// huge page sizes the machine no longer has go, as upstream's MachineInfo setter does.
fn with_others_resources(
    previous: Option<BTreeMap<String, Quantity>>,
    machine: BTreeMap<String, Quantity>,
) -> BTreeMap<String, Quantity> {
    let mut resources = previous.unwrap_or_default();
    resources.retain(|name, _| !name.starts_with("hugepages-"));
    resources.extend(machine);
    resources
}

/// Whether `new` differs from `old` in more than the conditions' heartbeat times, the test
/// upstream applies before posting within the report interval.
pub fn status_changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    without_heartbeats(old) != without_heartbeats(new)
}

fn without_heartbeats(status: &NodeStatus) -> NodeStatus {
    let mut status = status.clone();
    for condition in status.conditions.iter_mut().flatten() {
        condition.last_heartbeat_time = None;
    }
    status
}

/// The node's addresses: each node IP as InternalIP (the primary first), then the hostname.
fn addresses(info: &NodeInfoSource) -> Vec<NodeAddress> {
    info.node_ips
        .iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".to_string(),
            address: ip.to_string(),
        })
        .chain(std::iter::once(NodeAddress {
            type_: "Hostname".to_string(),
            address: info.hostname.clone(),
        }))
        .collect()
}

/// The architecture in Go's GOARCH spelling, which the API and labels use.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::AttachedVolume;
    use std::net::IpAddr;

    fn info() -> NodeInfoSource {
        NodeInfoSource {
            node_name: "node-a".to_string(),
            hostname: "node-a".to_string(),
            node_ips: vec!["10.0.0.5".parse::<IpAddr>().expect("ip")],
            kubelet_port: 10250,
            runtime_version: "containerd://1.6.20".to_string(),
            max_pods: 110,
            ..NodeInfoSource::default()
        }
    }

    fn machine() -> MachineFacts {
        MachineFacts {
            num_cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 50 << 30,
            machine_id: "m".to_string(),
            boot_id: "b".to_string(),
            kernel_version: "6.1.0".to_string(),
            os_image: "Debian GNU/Linux 12 (bookworm)".to_string(),
            ..MachineFacts::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid time")
    }

    #[test]
    fn fills_addresses_info_and_endpoints() {
        let status = node_status(&info(), &machine(), &PressureInputs::default(), None, at(1));
        let addresses = status.addresses.expect("addresses");
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, "10.0.0.5");
        assert_eq!(addresses[1].type_, "Hostname");
        assert_eq!(addresses[1].address, "node-a");
        let node_info = status.node_info.expect("nodeInfo");
        assert_eq!(node_info.kubelet_version, "v1.32.0");
        assert_eq!(node_info.container_runtime_version, "containerd://1.6.20");
        assert_eq!(node_info.operating_system, "linux");
        assert_eq!(node_info.os_image, "Debian GNU/Linux 12 (bookworm)");
        let endpoint = status.daemon_endpoints.and_then(|d| d.kubelet_endpoint);
        assert_eq!(endpoint.map(|e| e.port), Some(10250));
    }

    #[test]
    fn a_later_round_without_news_is_no_change() {
        let first = node_status(&info(), &machine(), &PressureInputs::default(), None, at(1));
        let second = node_status(
            &info(),
            &machine(),
            &PressureInputs::default(),
            Some(&first),
            at(11),
        );
        assert_ne!(first, second, "heartbeats move");
        assert!(!status_changed(&first, &second));
        let pressured = PressureInputs {
            memory_pressure: true,
            ..PressureInputs::default()
        };
        let third = node_status(&info(), &machine(), &pressured, Some(&second), at(21));
        assert!(status_changed(&second, &third));
    }

    #[test]
    fn fields_owned_by_others_are_kept() {
        let dongle = || {
            BTreeMap::from([
                ("example.com/dongle".to_string(), Quantity("4".to_string())),
                ("hugepages-1Gi".to_string(), Quantity("1Gi".to_string())),
            ])
        };
        let previous = NodeStatus {
            volumes_attached: Some(vec![AttachedVolume {
                name: "kubernetes.io/csi/d^x".to_string(),
                device_path: String::new(),
            }]),
            capacity: Some(dongle()),
            allocatable: Some(dongle()),
            ..NodeStatus::default()
        };
        let status = node_status(
            &info(),
            &machine(),
            &PressureInputs::default(),
            Some(&previous),
            at(1),
        );
        assert_eq!(status.volumes_attached, previous.volumes_attached);
        for resources in [status.capacity, status.allocatable] {
            let resources = resources.expect("resources");
            assert_eq!(resources["example.com/dongle"].0, "4");
            assert!(
                !resources.contains_key("hugepages-1Gi"),
                "stale huge pages go"
            );
            assert_eq!(resources["pods"].0, "110");
        }
    }
}
