//! Pod admission (upstream lifecycle predicateAdmitHandler and its generalFilter): a pod that does
//! not fit the node is rejected before anything of it starts, with the upstream reason and
//! message. With a Node the pod is checked against its allocatable, labels, name and taints;
//! without one (standalone) against the machine's cpu, memory and max pods.

mod affinity;
pub(crate) mod resources;
pub(crate) mod taints;

use crate::cm::machine::MachineInfo;
use crate::pod_manager::is_static_pod;
use k8s_openapi::api::core::v1::{Node, Pod};
use resources::{Allocatable, CPU, EPHEMERAL_STORAGE, Insufficient, MEMORY, PODS};
use std::collections::HashSet;

pub const POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH: &str = "PodOSSelectorNodeLabelDoesNotMatch";
pub const POD_OS_NOT_SUPPORTED: &str = "PodOSNotSupported";
pub const SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED: &str = "SupplementalGroupsPolicyNotSupported";
pub const OUT_OF_CPU: &str = "OutOfcpu";
pub const OUT_OF_MEMORY: &str = "OutOfmemory";
pub const OUT_OF_EPHEMERAL_STORAGE: &str = "OutOfephemeral-storage";
pub const OUT_OF_PODS: &str = "OutOfpods";
/// Predicate names, which are the reasons of their rejections.
pub const NODE_AFFINITY: &str = "NodeAffinity";
pub const NODE_NAME: &str = "NodeName";
pub const NODE_PORTS: &str = "NodePorts";
pub const TAINT_TOLERATION: &str = "TaintToleration";

/// The scheduler plugins' failure descriptions, which upstream puts in the message.
const NODE_AFFINITY_DESC: &str = "node(s) didn't match Pod's node affinity/selector";
const NODE_NAME_DESC: &str = "node(s) didn't match the requested node name";
const NODE_PORTS_DESC: &str = "node(s) didn't have free ports for the requested pod ports";
const TAINT_TOLERATION_DESC: &str = "node(s) had taints that the pod didn't tolerate";

const OS_LABEL: &str = "kubernetes.io/os";
/// This kubelet's runtime.GOOS.
const NODE_OS: &str = "linux";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

fn reject(reason: &str, message: impl Into<String>) -> Rejection {
    Rejection {
        reason: reason.into(),
        message: message.into(),
    }
}

/// Upstream PredicateFailureError: the reason is the predicate's name.
fn predicate_failed(name: &str, desc: &str) -> Rejection {
    reject(name, format!("Predicate {name} failed: {desc}"))
}

/// Upstream InsufficientResourceError, with the "OutOf" + resource reason.
fn out_of(r: Insufficient) -> Rejection {
    let reason = match r.resource.as_str() {
        CPU => OUT_OF_CPU.to_string(),
        MEMORY => OUT_OF_MEMORY.to_string(),
        EPHEMERAL_STORAGE => OUT_OF_EPHEMERAL_STORAGE.to_string(),
        PODS => OUT_OF_PODS.to_string(),
        other => format!("OutOf{other}"),
    };
    let message = format!(
        "Node didn't have enough resource: {}, requested: {}, used: {}, capacity: {}",
        r.resource, r.requested, r.used, r.capacity
    );
    Rejection { reason, message }
}

/// The host ports a pod holds while it runs: its containers' and its sidecars', with upstream's
/// defaults (TCP, 0.0.0.0).
fn host_ports(pod: &Pod) -> Vec<(String, String, i32)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| {
            let ip = p.host_ip.as_deref().filter(|ip| !ip.is_empty());
            (
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ip.unwrap_or("0.0.0.0").to_string(),
                p.host_port.unwrap_or_default(),
            )
        })
        .collect()
}

/// Upstream HostPortInfo.CheckConflict: a wildcard address clashes with any address.
fn ports_fit(pod: &Pod, others: &[&Pod]) -> bool {
    let taken: HashSet<_> = others.iter().flat_map(|p| host_ports(p)).collect();
    !host_ports(pod).into_iter().any(|(proto, ip, port)| {
        taken.iter().any(|(p2, ip2, port2)| {
            *p2 == proto && *port2 == port && (ip == "0.0.0.0" || *ip2 == "0.0.0.0" || ip == *ip2)
        })
    })
}

/// The checks upstream makes before the general filter, where preemption could not help.
fn os_and_features(pod: &Pod, node: Option<&Node>) -> Result<(), Rejection> {
    let os_label = pod.metadata.labels.as_ref().and_then(|l| l.get(OS_LABEL));
    // Upstream compares with the node's label after forcing it to the kubelet's own OS.
    if os_label.is_some_and(|os| os != NODE_OS) {
        return Err(reject(
            POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH,
            "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label",
        ));
    }
    let spec = pod.spec.as_ref();
    if spec
        .and_then(|s| s.os.as_ref())
        .is_some_and(|os| os.name != NODE_OS)
    {
        return Err(reject(
            POD_OS_NOT_SUPPORTED,
            "Failed to admit pod as the OS field doesn't match node OS",
        ));
    }
    let strict = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.supplemental_groups_policy.as_deref())
        == Some("Strict");
    let supported = node
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.features.as_ref())
        .and_then(|f| f.supplemental_groups_policy)
        .unwrap_or(false);
    if strict && node.is_some() && !supported {
        return Err(reject(
            SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED,
            "SupplementalGroupsPolicy=Strict is not supported in this node",
        ));
    }
    Ok(())
}

/// Decides whether `pod` may run beside the `admitted` pods. With a `node`, the pod must fit its
/// allocatable, match its labels and name, find its host ports free and tolerate its NoExecute
/// taints (static pods skip the taints); the first failure, in upstream's order, is returned.
/// Without a node, or before the node reports allocatable, `machine` and `max_pods` stand in.
/// `devices_held` (devices admitted pods hold, by resource) is a floor under the node's figures.
pub fn admit(
    pod: &Pod,
    admitted: &[&Pod],
    node: Option<&Node>,
    machine: &MachineInfo,
    max_pods: u32,
    devices_held: &resources::Amounts,
) -> Result<(), Rejection> {
    os_and_features(pod, node)?;
    let allocatable = node
        .and_then(Allocatable::of_node)
        .unwrap_or_else(|| Allocatable::of_machine(machine, max_pods))
        .at_least(devices_held);
    if let Some(first) = resources::insufficient(pod, admitted, &allocatable)
        .into_iter()
        .next()
    {
        return Err(out_of(first));
    }
    if let Some(node) = node {
        if !affinity::matches(pod, node) {
            return Err(predicate_failed(NODE_AFFINITY, NODE_AFFINITY_DESC));
        }
        let wanted = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if wanted.is_some_and(|n| !n.is_empty() && Some(n) != node.metadata.name.as_deref()) {
            return Err(predicate_failed(NODE_NAME, NODE_NAME_DESC));
        }
    }
    if !ports_fit(pod, admitted) {
        return Err(predicate_failed(NODE_PORTS, NODE_PORTS_DESC));
    }
    if let Some(node) = node
        && !is_static_pod(pod)
    {
        let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref());
        if taints::untolerated_no_execute(
            taints.unwrap_or_default(),
            tolerations.unwrap_or_default(),
        )
        .is_some()
        {
            return Err(predicate_failed(TAINT_TOLERATION, TAINT_TOLERATION_DESC));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubelet_sources::{API_SOURCE, CONFIG_SOURCE_ANNOTATION};
    use serde_json::{Value, json};

    fn pod(name: &str, containers: Value) -> Pod {
        pod_with(name, json!({"containers": containers}))
    }

    fn pod_with(name: &str, spec: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "uid": name}, "spec": spec}))
            .unwrap()
    }

    fn plain(name: &str) -> Pod {
        pod(name, json!([{"name": "c", "image": "i"}]))
    }

    fn requesting(name: &str, requests: Value) -> Pod {
        pod(
            name,
            json!([{"name": "c", "image": "i", "resources": {"requests": requests}}]),
        )
    }

    const M: MachineInfo = MachineInfo {
        cpu_milli: 2000,
        memory_bytes: 1 << 30,
    };

    fn node(extra: Value) -> Node {
        let mut n = json!({
            "metadata": {"name": "node-a", "labels": {"kubernetes.io/hostname": "node-a", "zone": "a"}},
            "status": {"allocatable": {
                "cpu": "4", "memory": "4Gi", "pods": "3", "ephemeral-storage": "10Gi",
                "example.com/gpu": "1", "hugepages-2Mi": "0"
            }},
        });
        merge(&mut n, extra);
        serde_json::from_value(n).unwrap()
    }

    fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn admit_on(p: &Pod, others: &[&Pod], n: &Node) -> Result<(), Rejection> {
        admit(p, others, Some(n), &M, 110, &Default::default())
    }

    #[test]
    fn standalone_max_pods() {
        let a = plain("a");
        let b = plain("b");
        assert!(admit(&b, &[], None, &M, 1, &Default::default()).is_ok());
        let r = admit(&b, &[&a], None, &M, 1, &Default::default()).unwrap_err();
        assert_eq!(r.reason, OUT_OF_PODS);
        assert_eq!(
            r.message,
            "Node didn't have enough resource: pods, requested: 1, used: 1, capacity: 1"
        );
    }

    #[test]
    fn standalone_resources() {
        let big = requesting("big", json!({"cpu": "3"}));
        let r = admit(&big, &[], None, &M, 110, &Default::default()).unwrap_err();
        assert_eq!(r.reason, OUT_OF_CPU);
        assert_eq!(
            r.message,
            "Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000"
        );
        let mem = requesting("m", json!({"memory": "600Mi"}));
        assert!(admit(&mem, &[], None, &M, 110, &Default::default()).is_ok());
        assert_eq!(
            admit(&mem, &[&mem.clone()], None, &M, 110, &Default::default())
                .unwrap_err()
                .reason,
            OUT_OF_MEMORY
        );
        // The machine knows nothing of storage or devices: they are not checked.
        let gpu = requesting(
            "g",
            json!({"ephemeral-storage": "1Ti", "example.com/gpu": "9"}),
        );
        assert!(admit(&gpu, &[], None, &M, 110, &Default::default()).is_ok());
    }

    #[test]
    fn node_allocatable_replaces_the_machine() {
        let n = node(json!({}));
        let cpu = requesting("c", json!({"cpu": "3"}));
        assert!(admit_on(&cpu, &[], &n).is_ok());
        let r = admit_on(&cpu, &[&cpu.clone()], &n).unwrap_err();
        assert_eq!(r.reason, OUT_OF_CPU);
        assert_eq!(
            r.message,
            "Node didn't have enough resource: cpu, requested: 3000, used: 3000, capacity: 4000"
        );
        let (a, b, c) = (plain("a"), plain("b"), plain("c"));
        let r = admit_on(&plain("d"), &[&a, &b, &c], &n).unwrap_err();
        assert_eq!(r.reason, OUT_OF_PODS);
        assert_eq!(
            r.message,
            "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"
        );
        let memory = requesting("m", json!({"memory": "5Gi"}));
        assert_eq!(
            admit_on(&memory, &[], &n).unwrap_err().reason,
            OUT_OF_MEMORY
        );
    }

    #[test]
    fn devices_pods_hold_count_while_the_node_reports_none() {
        // A restarted kubelet: the plugin has not registered again, the node shows 0.
        let n = node(json!({"status": {"allocatable": {"example.com/gpu": "0"}}}));
        let gpu = requesting("g", json!({"example.com/gpu": "1"}));
        let admit_holding = |held: i64| {
            let held = [("example.com/gpu".to_string(), held)].into();
            admit(&gpu, &[], Some(&n), &M, 110, &held)
        };
        assert_eq!(admit_holding(0).unwrap_err().reason, "OutOfexample.com/gpu");
        assert!(admit_holding(1).is_ok());
    }

    #[test]
    fn ephemeral_storage_and_extended_resources() {
        let n = node(json!({}));
        let disk = requesting("d", json!({"ephemeral-storage": "11Gi"}));
        let r = admit_on(&disk, &[], &n).unwrap_err();
        assert_eq!(r.reason, OUT_OF_EPHEMERAL_STORAGE);
        let gpu = requesting("g", json!({"example.com/gpu": "1"}));
        assert!(admit_on(&gpu, &[], &n).is_ok());
        let r = admit_on(&gpu, &[&gpu.clone()], &n).unwrap_err();
        assert_eq!(r.reason, "OutOfexample.com/gpu");
        assert_eq!(
            r.message,
            "Node didn't have enough resource: example.com/gpu, requested: 1, used: 1, capacity: 1"
        );
        // An extended resource the node does not advertise is not the kubelet's to check.
        let fpga = requesting("f", json!({"example.com/fpga": "2"}));
        assert!(admit_on(&fpga, &[], &n).is_ok());
        let huge = requesting("h", json!({"hugepages-2Mi": "2Mi"}));
        assert_eq!(
            admit_on(&huge, &[], &n).unwrap_err().reason,
            "OutOfhugepages-2Mi"
        );
    }

    #[test]
    fn pods_come_before_cpu() {
        let n = node(json!({"status": {"allocatable": {"pods": "0"}}}));
        let cpu = requesting("c", json!({"cpu": "5"}));
        assert_eq!(admit_on(&cpu, &[], &n).unwrap_err().reason, OUT_OF_PODS);
    }

    #[test]
    fn init_containers_and_overhead_count() {
        let n = node(json!({}));
        let p = pod_with(
            "p",
            json!({
                "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}],
                "initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"cpu": "3"}}}],
                "overhead": {"cpu": "1500m"},
            }),
        );
        let r = admit_on(&p, &[], &n).unwrap_err();
        assert_eq!(
            r.message,
            "Node didn't have enough resource: cpu, requested: 4500, used: 0, capacity: 4000"
        );
    }

    #[test]
    fn a_node_without_allocatable_falls_back_to_the_machine() {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "node-a"}})).unwrap();
        let big = requesting("big", json!({"cpu": "3"}));
        assert_eq!(admit_on(&big, &[], &n).unwrap_err().reason, OUT_OF_CPU);
        assert!(admit_on(&requesting("s", json!({"cpu": "1"})), &[], &n).is_ok());
    }

    #[test]
    fn node_selector_and_affinity() {
        let n = node(json!({}));
        let ok = pod_with(
            "ok",
            json!({"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"zone": "a"}}),
        );
        assert!(admit_on(&ok, &[], &n).is_ok());
        let bad = pod_with(
            "bad",
            json!({"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"zone": "b"}}),
        );
        let r = admit_on(&bad, &[], &n).unwrap_err();
        assert_eq!(r.reason, NODE_AFFINITY);
        assert_eq!(
            r.message,
            "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
        );
        let affinity = pod_with(
            "aff",
            json!({"containers": [{"name": "c", "image": "i"}], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-b"]}]}
                ]}
            }}}),
        );
        assert_eq!(
            admit_on(&affinity, &[], &n).unwrap_err().reason,
            NODE_AFFINITY
        );
        // Standalone: no labels to match against.
        assert!(admit(&bad, &[], None, &M, 110, &Default::default()).is_ok());
    }

    #[test]
    fn node_name() {
        let n = node(json!({}));
        let elsewhere = pod_with(
            "p",
            json!({"containers": [{"name": "c", "image": "i"}], "nodeName": "node-b"}),
        );
        let r = admit_on(&elsewhere, &[], &n).unwrap_err();
        assert_eq!(
            (r.reason.as_str(), r.message.as_str()),
            (
                NODE_NAME,
                "Predicate NodeName failed: node(s) didn't match the requested node name"
            )
        );
    }

    #[test]
    fn host_port_clash() {
        let port =
            |name: &str, p: Value| pod(name, json!([{"name": "c", "image": "i", "ports": [p]}]));
        let a = port("a", json!({"containerPort": 80, "hostPort": 8080}));
        let b = port("b", json!({"containerPort": 81, "hostPort": 8080}));
        let udp = port(
            "u",
            json!({"containerPort": 81, "hostPort": 8080, "protocol": "UDP"}),
        );
        let other_ip = port(
            "i",
            json!({"containerPort": 81, "hostPort": 9090, "hostIP": "10.0.0.1"}),
        );
        let same_ip = port(
            "j",
            json!({"containerPort": 81, "hostPort": 9090, "hostIP": "10.0.0.1"}),
        );
        let second_ip = port(
            "k",
            json!({"containerPort": 81, "hostPort": 9090, "hostIP": "10.0.0.2"}),
        );
        let r = admit(&b, &[&a], None, &M, 110, &Default::default()).unwrap_err();
        assert_eq!(r.reason, NODE_PORTS);
        assert_eq!(
            r.message,
            "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
        );
        assert!(admit(&udp, &[&a], None, &M, 110, &Default::default()).is_ok());
        assert!(admit(&second_ip, &[&other_ip], None, &M, 110, &Default::default()).is_ok());
        assert_eq!(
            admit(&same_ip, &[&other_ip], None, &M, 110, &Default::default())
                .unwrap_err()
                .reason,
            NODE_PORTS
        );
        let wildcard = port("w", json!({"containerPort": 81, "hostPort": 9090}));
        assert!(admit(&wildcard, &[&other_ip], None, &M, 110, &Default::default()).is_err());
        // A sidecar holds its port; a plain init container does not.
        let with_init = |name: &str, policy: Value| {
            pod_with(
                name,
                json!({"containers": [{"name": "c", "image": "i"}], "initContainers": [{
                    "name": "s", "image": "i", "restartPolicy": policy,
                    "ports": [{"containerPort": 1, "hostPort": 8080}]
                }]}),
            )
        };
        assert!(
            admit(
                &with_init("s", json!("Always")),
                &[&a],
                None,
                &M,
                110,
                &Default::default()
            )
            .is_err()
        );
        assert!(
            admit(
                &with_init("t", Value::Null),
                &[&a],
                None,
                &M,
                110,
                &Default::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn no_execute_taints_reject_unless_tolerated() {
        let tainted = node(json!({"spec": {"taints": [
            {"key": "maintenance", "value": "true", "effect": "NoExecute"}
        ]}}));
        let r = admit_on(&plain("p"), &[], &tainted).unwrap_err();
        assert_eq!(r.reason, TAINT_TOLERATION);
        assert_eq!(
            r.message,
            "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"
        );
        let tolerant = pod_with(
            "t",
            json!({"containers": [{"name": "c", "image": "i"}], "tolerations": [
                {"key": "maintenance", "operator": "Equal", "value": "true", "effect": "NoExecute"}
            ]}),
        );
        assert!(admit_on(&tolerant, &[], &tainted).is_ok());
        let everything = pod_with(
            "e",
            json!({"containers": [{"name": "c", "image": "i"}], "tolerations": [{"operator": "Exists"}]}),
        );
        assert!(admit_on(&everything, &[], &tainted).is_ok());
    }

    #[test]
    fn no_schedule_taints_do_not_reject_a_bound_pod() {
        let n = node(json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
        ]}}));
        assert!(admit_on(&plain("p"), &[], &n).is_ok());
    }

    #[test]
    fn static_pods_skip_the_taints() {
        let tainted = node(json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}));
        let mut p = plain("static");
        p.metadata.annotations = Some(
            [(CONFIG_SOURCE_ANNOTATION.to_string(), "file".to_string())]
                .into_iter()
                .collect(),
        );
        assert!(admit_on(&p, &[], &tainted).is_ok());
        p.metadata.annotations = Some(
            [(CONFIG_SOURCE_ANNOTATION.to_string(), API_SOURCE.to_string())]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            admit_on(&p, &[], &tainted).unwrap_err().reason,
            TAINT_TOLERATION
        );
    }

    #[test]
    fn os_checks() {
        let n = node(json!({}));
        let mut windows = plain("w");
        windows.metadata.labels = Some(
            [(OS_LABEL.to_string(), "windows".to_string())]
                .into_iter()
                .collect(),
        );
        let r = admit_on(&windows, &[], &n).unwrap_err();
        assert_eq!(r.reason, POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH);
        let os_field = pod_with(
            "o",
            json!({"containers": [{"name": "c", "image": "i"}], "os": {"name": "windows"}}),
        );
        assert_eq!(
            admit(&os_field, &[], None, &M, 110, &Default::default())
                .unwrap_err()
                .reason,
            POD_OS_NOT_SUPPORTED
        );
    }

    #[test]
    fn strict_supplemental_groups_need_the_node_feature() {
        let strict = pod_with(
            "s",
            json!({"containers": [{"name": "c", "image": "i"}],
                   "securityContext": {"supplementalGroupsPolicy": "Strict"}}),
        );
        let r = admit_on(&strict, &[], &node(json!({}))).unwrap_err();
        assert_eq!(r.reason, SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED);
        assert_eq!(
            r.message,
            "SupplementalGroupsPolicy=Strict is not supported in this node"
        );
        let capable = node(json!({"status": {"features": {"supplementalGroupsPolicy": true}}}));
        assert!(admit_on(&strict, &[], &capable).is_ok());
    }
}
