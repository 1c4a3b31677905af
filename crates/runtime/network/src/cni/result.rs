//! The pod's IPs from a CNI result: 0.3.x, 0.4.0 and 1.0.0 (`ips` with interface indexes),
//! and the older 0.1.0/0.2.0 form (`ip4`, `ip6`).

use serde_json::Value;
use std::net::IpAddr;

/// The interface CNI configures in the pod; its addresses are the pod's.
pub(crate) const POD_IFNAME: &str = "eth0";

/// Addresses (without prefix length) on eth0, or given without an interface, IPv4 first as
/// containerd's default ip preference orders them.
pub(crate) fn pod_ips(result: &Value) -> Result<Vec<String>, String> {
    let mut ips = Vec::new();
    if let Some(entries) = result.get("ips") {
        let entries = entries.as_array().ok_or("'ips' is not a list")?;
        let interfaces = result
            .get("interfaces")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for entry in entries {
            let on_pod_interface = match entry.get("interface") {
                None | Some(Value::Null) => true,
                Some(index) => {
                    let interface = index
                        .as_u64()
                        .and_then(|i| interfaces.get(usize::try_from(i).ok()?))
                        .ok_or_else(|| {
                            format!("ip entry names interface {index}, not in 'interfaces'")
                        })?;
                    interface.get("name").and_then(Value::as_str) == Some(POD_IFNAME)
                }
            };
            if on_pod_interface {
                ips.push(address(entry.get("address"))?);
            }
        }
    } else {
        for key in ["ip4", "ip6"] {
            if let Some(config) = result.get(key) {
                ips.push(address(config.get("ip"))?);
            }
        }
    }
    // Stable: IPv4 addresses keep their order, then IPv6 theirs.
    ips.sort_by_key(|ip| ip.contains(':'));
    Ok(ips)
}

/// "10.1.0.2/24" -> "10.1.0.2", checked to be an address.
fn address(value: Option<&Value>) -> Result<String, String> {
    let text = value
        .and_then(Value::as_str)
        .ok_or("an ip entry has no address")?;
    let ip = text.split_once('/').map_or(text, |(ip, _)| ip);
    ip.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|e| format!("address {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_result_takes_eth0_addresses_ipv4_first() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb"},
                {"name": "veth1", "mac": "cc:dd"},
                {"name": "eth0", "mac": "ee:ff", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2},
                {"address": "10.88.0.1/16", "interface": 0}
            ]
        });
        assert_eq!(pod_ips(&result).unwrap(), ["10.88.0.5", "fd00::5"]);
    }

    #[test]
    fn v04_and_v03_results_with_version_fields() {
        let result = json!({
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "eth0", "sandbox": "/proc/1/ns/net"}],
            "ips": [{"version": "4", "address": "192.168.1.7/24", "interface": 0}],
            "dns": {}
        });
        assert_eq!(pod_ips(&result).unwrap(), ["192.168.1.7"]);
    }

    #[test]
    fn ips_without_interface_count_as_eth0() {
        let result = json!({"cniVersion": "0.4.0", "ips": [{"address": "10.0.0.9/8"}]});
        assert_eq!(pod_ips(&result).unwrap(), ["10.0.0.9"]);
    }

    #[test]
    fn old_ip4_ip6_result() {
        let result = json!({
            "cniVersion": "0.2.0",
            "ip6": {"ip": "2001:db8::2/64"},
            "ip4": {"ip": "10.1.2.3/24", "gateway": "10.1.2.1"}
        });
        assert_eq!(pod_ips(&result).unwrap(), ["10.1.2.3", "2001:db8::2"]);
    }

    #[test]
    fn malformed_results_are_errors() {
        for result in [
            json!({"ips": [{"address": "10.0.0.1/8", "interface": 3}], "interfaces": []}),
            json!({"ips": [{"gateway": "10.0.0.1"}]}),
            json!({"ips": [{"address": "not-an-ip/8"}]}),
            json!({"ips": "10.0.0.1"}),
        ] {
            assert!(pod_ips(&result).is_err(), "{result}");
        }
        assert!(pod_ips(&json!({"cniVersion": "1.0.0"})).unwrap().is_empty());
    }
}
