use super::*;
use crate::labels::ContainerInfo;
use crate::runtime_status::ContainerState;
use k8s_openapi::api::core::v1::{ContainerPort, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;
use std::path::Path;

fn go_spew_example() -> Container {
    Container {
        name: "test_container".into(),
        image: Some("foo/image:v1".into()),
        args: Some(vec!["/bin/sh".into(), "-c".into(), "echo abc".into()]),
        ports: Some(vec![ContainerPort {
            container_port: 8001,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

#[test]
fn legacy_hash_matches_upstream_helpers_test_vector() {
    // helpers_test.go TestHashContainer, v1.28 to v1.30.
    assert_eq!(
        legacy::container_hash(&go_spew_example()),
        Some(0x3c42_280f)
    );
}

#[test]
fn legacy_hash_matches_upstream_consistent_hash_vector() {
    // container_hash_test.go TestConsistentHashContainer (the v1.15/v1.16 value, kept to v1.30).
    let json = r#"{
      "name": "test_container", "image": "foo/image:v1", "command": ["/bin/testcmd"],
      "args": ["/bin/sh", "-c", "echo abc"], "ports": [{"containerPort": 8001}],
      "env": [{"name": "ENV_FOO", "value": "bar"},
              {"name": "ENV_BAR", "valueFrom": {"secretKeyRef": {"name": "foo", "key": "bar", "optional": true}}}],
      "resources": {"limits": {"foo": "1G"}, "requests": {"foo": "500M"}}
    }"#;
    let c: Container = serde_json::from_str(json).unwrap();
    assert_eq!(legacy::container_hash(&c), Some(0x0311_670a));
}

#[test]
fn without_resources_ignores_resources() {
    let mut c = go_spew_example();
    let bare = legacy::container_hash_without_resources(&c);
    c.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([("cpu".into(), Quantity("200m".into()))])),
        ..Default::default()
    });
    assert_eq!(legacy::container_hash_without_resources(&c), bare);
    assert_ne!(legacy::container_hash(&c), bare);
    // Emptied resources are written as `"resources":{}`, as in the plain hash of a bare container.
    assert_eq!(bare, Some(0x3c42_280f));
}

/// Manifests run by the upstream kubelet v1.28.4, with the hashes it wrote for them.
#[test]
fn legacy_hash_matches_hashes_captured_from_the_v1_28_4_kubelet() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/hash/fixtures/v1.28.4");
    let table = std::fs::read_to_string(dir.join("hashes.txt")).unwrap();
    let mut checked = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let [file, name, hash]: [&str; 3] = line
            .split_whitespace()
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        let path = dir.join(file);
        let data = std::fs::read(&path).unwrap();
        let pod = kubelet_sources::decode_pod(&data, &kubelet_sources::Origin::file(&path), "cap1")
            .unwrap();
        let spec = pod.spec.unwrap();
        let container = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{file} has no container {name}"));
        let expected = u64::from_str_radix(hash, 16).unwrap();
        assert_eq!(
            legacy::container_hash(container),
            Some(expected),
            "{file} {name}: {}",
            go_container_json::container_json(container).unwrap()
        );
        checked += 1;
    }
    assert_eq!(checked, 6);
}

fn running(c: &Container, hash: u64) -> ContainerStatus {
    ContainerStatus {
        id: "c1".into(),
        sandbox_id: "s1".into(),
        name: c.name.clone(),
        state: ContainerState::Running,
        created_at: 1,
        started_at: 1,
        finished_at: 0,
        exit_code: 0,
        reason: String::new(),
        message: String::new(),
        image: "docker.io/foo/image:v1".into(),
        image_ref: "sha256:01".into(),
        termination_message: None,
        info: ContainerInfo {
            container_name: c.name.clone(),
            hash,
            ports: c.ports.clone().unwrap_or_default(),
            ..Default::default()
        },
    }
}

#[test]
fn ours_and_legacy_hashes_both_match() {
    let c = go_spew_example();
    assert!(spec_unchanged(&running(&c, container_hash(&c)), &c));
    assert!(spec_unchanged(&running(&c, 0x3c42_280f), &c));
}

#[test]
fn unknown_hash_falls_back_to_the_observed_fields() {
    let c = go_spew_example();
    // Same image and ports: kept.
    assert!(spec_unchanged(&running(&c, 0x1234), &c));
    let mut other_image = c.clone();
    other_image.image = Some("foo/image:v2".into());
    assert!(!spec_unchanged(&running(&c, 0x1234), &other_image));
    let mut other_port = c.clone();
    other_port.ports.as_mut().unwrap()[0].container_port = 8002;
    assert!(!spec_unchanged(&running(&c, 0x1234), &other_port));
}

#[test]
fn a_known_hash_of_another_spec_is_a_change_of_image() {
    let c = go_spew_example();
    let mut changed = c.clone();
    changed.image = Some("foo/image:v2".into());
    assert!(!spec_unchanged(&running(&c, container_hash(&c)), &changed));
    assert!(!spec_unchanged(&running(&c, 0x3c42_280f), &changed));
}

#[test]
fn v1_28_hash_without_resources_keeps_a_resized_container() {
    let c = go_spew_example();
    let mut status = running(&c, 0x1234);
    status.image = "elsewhere/other:1".into();
    status.info.hash_without_resources = legacy::container_hash_without_resources(&c);
    let mut resized = c.clone();
    resized.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([("memory".into(), Quantity("64Mi".into()))])),
        ..Default::default()
    });
    assert!(spec_unchanged(&status, &resized));
}
