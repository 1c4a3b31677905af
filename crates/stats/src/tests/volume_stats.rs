use super::promtext::Exposition;
use crate::types::{FsStats, PvcReference, Timestamp, VolumeHealthStats, VolumeStats};
use crate::{BuildInfo, KubeletMetrics, VolumeStatsCache};
use std::collections::HashMap;

fn volume(name: &str, claim: Option<&str>, used: u64, health: Option<bool>) -> VolumeStats {
    VolumeStats {
        fs: FsStats {
            time: Timestamp(0),
            capacity_bytes: Some(1000),
            available_bytes: Some(1000 - used),
            used_bytes: Some(used),
            inodes: Some(100),
            inodes_free: Some(90),
            inodes_used: Some(10),
        },
        name: name.to_string(),
        pvc_ref: claim.map(|c| PvcReference {
            name: c.to_string(),
            namespace: "ns".to_string(),
        }),
        volume_health_stats: health.map(|abnormal| VolumeHealthStats { abnormal }),
    }
}

fn exposition(cache: &VolumeStatsCache) -> (String, Exposition) {
    let mut metrics = KubeletMetrics::new("node-a", BuildInfo::default());
    metrics.registry_mut().register_collector(cache.collector());
    let text = metrics.encode_prometheus_text();
    let parsed = Exposition::parse(&text);
    (text, parsed)
}

#[test]
fn claims_are_reported_once_with_upstreams_names_and_help() {
    let cache = VolumeStatsCache::default();
    let (text, _) = exposition(&cache);
    assert!(!text.contains("kubelet_volume_stats"), "{text}");

    cache.store(HashMap::from([
        (
            "pod-a".to_string(),
            vec![
                volume("data", Some("shared"), 400, Some(true)),
                // Not from a claim: no series.
                volume("scratch", None, 1, None),
            ],
        ),
        // The same claim in a second pod is one series.
        (
            "pod-b".to_string(),
            vec![volume("data", Some("shared"), 400, Some(true))],
        ),
        (
            "pod-c".to_string(),
            vec![volume("logs", Some("other"), 250, None)],
        ),
    ]));
    let (text, e) = exposition(&cache);
    let shared = [("namespace", "ns"), ("persistentvolumeclaim", "shared")];
    let other = [("namespace", "ns"), ("persistentvolumeclaim", "other")];
    for (name, help, shared_value, other_value) in [
        (
            "capacity_bytes",
            "Capacity in bytes of the volume",
            1000.0,
            1000.0,
        ),
        (
            "available_bytes",
            "Number of available bytes in the volume",
            600.0,
            750.0,
        ),
        (
            "used_bytes",
            "Number of used bytes in the volume",
            400.0,
            250.0,
        ),
        (
            "inodes",
            "Maximum number of inodes in the volume",
            100.0,
            100.0,
        ),
        (
            "inodes_free",
            "Number of free inodes in the volume",
            90.0,
            90.0,
        ),
        (
            "inodes_used",
            "Number of used inodes in the volume",
            10.0,
            10.0,
        ),
    ] {
        let name = format!("kubelet_volume_stats_{name}");
        assert!(
            text.contains(&format!("# HELP {name} [ALPHA] {help}\n")),
            "{text}"
        );
        assert_eq!(e.types[&name], "gauge");
        assert_eq!(e.find(&name, &[]).len(), 2, "{text}");
        assert_eq!(e.one(&name, &shared).value, shared_value);
        assert_eq!(e.one(&name, &other).value, other_value);
        assert_eq!(e.one(&name, &other).labels.len(), 2);
    }
    // Health only for volumes whose driver reports their condition.
    let health = "kubelet_volume_stats_health_status_abnormal";
    assert!(text.contains(&format!("# HELP {health} [ALPHA] Abnormal volume health status. The count is either 1 or 0. 1 indicates the volume is unhealthy, 0 indicates volume is healthy\n")), "{text}");
    assert_eq!(e.one(health, &shared).value, 1.0);
    assert!(e.find(health, &other).is_empty());

    cache.forget_pod("pod-c");
    let (_, e) = exposition(&cache);
    assert!(e.find("kubelet_volume_stats_used_bytes", &other).is_empty());
}
