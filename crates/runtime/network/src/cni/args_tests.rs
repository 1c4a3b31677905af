use super::*;
use k8s_cri::v1::PortMapping;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn attachment() -> Attachment {
    Attachment {
        sandbox_id: "abc123".into(),
        netns: PathBuf::from("/run/netns/x"),
        pod_name: "web".into(),
        pod_namespace: "default".into(),
        pod_uid: "uid-1".into(),
        port_mappings: Vec::new(),
        annotations: BTreeMap::new(),
    }
}

#[test]
fn cni_args_in_containerd_order() {
    assert_eq!(
        cni_args(&attachment()).unwrap(),
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
         K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=uid-1"
    );
    let mut bad = attachment();
    bad.pod_name = "web;K8S_POD_UID=evil".into();
    let err = cni_args(&bad).unwrap_err();
    assert!(err.to_string().contains("K8S_POD_NAME"), "{err}");
}

#[test]
fn port_mappings_only_with_host_ports_protocol_lowercase() {
    let mut att = attachment();
    att.port_mappings = vec![
        PortMapping {
            protocol: Protocol::Udp as i32,
            container_port: 53,
            host_port: 5353,
            host_ip: "127.0.0.1".into(),
        },
        PortMapping {
            protocol: Protocol::Tcp as i32,
            container_port: 80,
            host_port: 0,
            host_ip: String::new(),
        },
        PortMapping {
            protocol: Protocol::Sctp as i32,
            container_port: 9,
            host_port: 9000,
            host_ip: String::new(),
        },
    ];
    let caps = capability_args(&att).unwrap();
    assert_eq!(
        Value::Object(caps),
        json!({"portMappings": [
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
            {"hostPort": 9000, "containerPort": 9, "protocol": "sctp", "hostIP": ""},
        ]})
    );
    att.port_mappings.retain(|m| m.host_port == 0);
    assert!(capability_args(&att).unwrap().is_empty());
}

#[test]
fn bandwidth_from_annotations_in_bits_per_second() {
    let mut att = attachment();
    att.annotations
        .insert(INGRESS_ANNOTATION.into(), "10M".into());
    let caps = capability_args(&att).unwrap();
    assert_eq!(
        caps["bandwidth"],
        json!({"ingressRate": 10_000_000u64, "ingressBurst": u32::MAX})
    );
    att.annotations
        .insert(EGRESS_ANNOTATION.into(), "1Gi".into());
    let caps = capability_args(&att).unwrap();
    assert_eq!(caps["bandwidth"]["egressRate"], json!(1u64 << 30));
    assert_eq!(caps["bandwidth"]["egressBurst"], json!(u32::MAX));

    att.annotations
        .insert(EGRESS_ANNOTATION.into(), "10".into());
    let err = capability_args(&att).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(EGRESS_ANNOTATION) && text.contains("unreasonably small"),
        "{text}"
    );
}

#[test]
fn quantities_round_up_like_kubernetes() {
    for (text, bits) in [
        ("1k", 1_000),
        ("1.5M", 1_500_000),
        ("100Ki", 102_400),
        ("2e6", 2_000_000),
        ("1P", 1_000_000_000_000_000),
        ("1000", 1_000),
        ("1000500m", 1_001),
        ("0.0015M", 1_500),
    ] {
        assert_eq!(bandwidth_bits(text), Ok(bits), "{text}");
    }
    for (text, reason) in [
        ("999", "small"),
        ("-5M", "small"),
        ("2P", "large"),
        ("1e40", "large"),
        ("10Q", "not a quantity"),
        ("M", "not a quantity"),
        ("", "not a quantity"),
    ] {
        let err = bandwidth_bits(text).unwrap_err();
        assert!(err.contains(reason), "{text}: {err}");
    }
}
