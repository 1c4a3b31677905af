//! What the runtime tells plugins about the pod: CNI_ARGS and the capability args
//! (portMappings, bandwidth), built as containerd's CRI plugin builds them.

use crate::{Attachment, NetworkError};
use k8s_cri::v1::Protocol;
use serde_json::{Map, Value, json};

pub(crate) const INGRESS_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
pub(crate) const EGRESS_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// `IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..`
pub(crate) fn cni_args(attachment: &Attachment) -> Result<String, NetworkError> {
    let pairs = [
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", attachment.pod_namespace.as_str()),
        ("K8S_POD_NAME", attachment.pod_name.as_str()),
        ("K8S_POD_INFRA_CONTAINER_ID", attachment.sandbox_id.as_str()),
        ("K8S_POD_UID", attachment.pod_uid.as_str()),
    ];
    // ';' and '=' are CNI_ARGS' separators: a value holding one would smuggle in other args.
    if let Some((key, value)) = pairs.iter().find(|(_, v)| v.contains([';', '='])) {
        return Err(NetworkError::InvalidAttachment {
            sandbox_id: attachment.sandbox_id.clone(),
            reason: format!("{key} {value:?} contains ';' or '='"),
        });
    }
    Ok(pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";"))
}

/// The runtimeConfig values offered to plugins that declare the capability. Only present
/// when there is something to say (no host ports: no portMappings).
pub(crate) fn capability_args(attachment: &Attachment) -> Result<Map<String, Value>, NetworkError> {
    let mut caps = Map::new();
    let ports: Vec<Value> = attachment
        .port_mappings
        .iter()
        .filter(|m| m.host_port > 0)
        .map(|m| {
            let protocol = Protocol::try_from(m.protocol).unwrap_or(Protocol::Tcp);
            json!({
                "hostPort": m.host_port,
                "containerPort": m.container_port,
                "protocol": protocol.as_str_name().to_ascii_lowercase(),
                "hostIP": m.host_ip,
            })
        })
        .collect();
    if !ports.is_empty() {
        caps.insert("portMappings".into(), Value::Array(ports));
    }
    let mut bandwidth = Map::new();
    for (annotation, rate, burst) in [
        (INGRESS_ANNOTATION, "ingressRate", "ingressBurst"),
        (EGRESS_ANNOTATION, "egressRate", "egressBurst"),
    ] {
        let Some(value) = attachment.annotations.get(annotation) else {
            continue;
        };
        let bits = bandwidth_bits(value).map_err(|reason| NetworkError::Bandwidth {
            sandbox_id: attachment.sandbox_id.clone(),
            annotation: annotation.into(),
            value: value.clone(),
            reason,
        })?;
        bandwidth.insert(rate.into(), json!(bits));
        // containerd's burst: large enough never to be the limit.
        bandwidth.insert(burst.into(), json!(u32::MAX));
    }
    if !bandwidth.is_empty() {
        caps.insert("bandwidth".into(), Value::Object(bandwidth));
    }
    Ok(caps)
}

/// A Kubernetes quantity in bits per second, between 1k and 1P as the kubelet's
/// ExtractPodBandwidthResources requires, rounded up like Quantity.Value().
pub(crate) fn bandwidth_bits(text: &str) -> Result<u64, String> {
    const MIN: i128 = 1_000;
    const MAX: i128 = 1_000_000_000_000_000;
    let value = match kubelet_quantity::Quantity::parse(text) {
        Ok(quantity) => quantity.scaled_ceil(0),
        Err(kubelet_quantity::QuantityError::TooLarge) => i128::MAX,
        Err(kubelet_quantity::QuantityError::Syntax) => {
            return Err(format!("{text:?} is not a quantity"));
        }
    };
    if value < MIN {
        return Err("resource is unreasonably small (< 1kbit)".into());
    }
    if value > MAX {
        return Err("resource is unreasonably large (> 1Pbit)".into());
    }
    Ok(value as u64)
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
