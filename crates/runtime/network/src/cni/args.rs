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
    const MIN: u128 = 1_000;
    const MAX: u128 = 1_000_000_000_000_000;
    let value = quantity(text.trim())?;
    if value < MIN {
        return Err("resource is unreasonably small (< 1kbit)".into());
    }
    if value > MAX {
        return Err("resource is unreasonably large (> 1Pbit)".into());
    }
    Ok(value as u64)
}

/// Parses `<number><suffix>` (suffix: k M G T P E, Ki..Ei, m u n, or e<N>), rounding up.
/// Negative numbers come out as 0; absurdly large ones as u128::MAX.
fn quantity(text: &str) -> Result<u128, String> {
    let bad = || format!("{text:?} is not a quantity");
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let split = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.trim_start_matches('0').parse().or_else(|_| {
        if digits.bytes().all(|b| b == b'0') {
            Ok(0)
        } else {
            Err(bad())
        }
    })?;
    let (factor, exp10): (u128, i64) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        _ => {
            let exp = suffix
                .strip_prefix(['e', 'E'])
                .and_then(|e| e.parse::<i64>().ok())
                .ok_or_else(bad)?;
            (1, exp)
        }
    };
    if negative || mantissa == 0 {
        return Ok(0);
    }
    let exp = exp10 - fraction.len() as i64;
    let scaled = mantissa.saturating_mul(factor);
    Ok(if exp >= 0 {
        u32::try_from(exp)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
            .and_then(|p| scaled.checked_mul(p))
            .unwrap_or(u128::MAX)
    } else {
        match u32::try_from(-exp).ok().and_then(|e| 10u128.checked_pow(e)) {
            Some(p) => scaled.div_ceil(p),
            None => 1,
        }
    })
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
