use super::*;
use csi::volume_usage::Unit;
use kubelet_testkit::csi_driver::{CsiDriverConfig, TestCsiDriver};

fn usage(unit: Unit, total: i64, available: i64, used: i64) -> csi::VolumeUsage {
    csi::VolumeUsage {
        available,
        total,
        used,
        unit: unit as i32,
    }
}

fn claim() -> PvcReference {
    PvcReference {
        name: "claim".into(),
        namespace: "ns".into(),
    }
}

const STATS_ONLY: NodeCapabilities = NodeCapabilities {
    stage_unstage_volume: false,
    get_volume_stats: true,
    volume_condition: false,
    volume_mount_group: false,
    single_node_multi_writer: false,
};

#[test]
fn usage_maps_to_upstreams_figures() {
    let answer = csi::NodeGetVolumeStatsResponse {
        usage: vec![
            usage(Unit::Bytes, 1000, 600, 400),
            usage(Unit::Inodes, 50, 45, 5),
        ],
        volume_condition: None,
    };
    let stats = to_volume_stats("data", Some(claim()), &answer, STATS_ONLY, Timestamp(7)).unwrap();
    assert_eq!(
        stats,
        VolumeStats {
            fs: FsStats {
                time: Timestamp(7),
                capacity_bytes: Some(1000),
                available_bytes: Some(600),
                used_bytes: Some(400),
                inodes: Some(50),
                inodes_free: Some(45),
                inodes_used: Some(5),
            },
            name: "data".into(),
            pvc_ref: Some(claim()),
            volume_health_stats: None,
        }
    );
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "time": "1970-01-01T00:00:00Z",
            "capacityBytes": 1000, "availableBytes": 600, "usedBytes": 400,
            "inodes": 50, "inodesFree": 45, "inodesUsed": 5,
            "name": "data",
            "pvcRef": {"name": "claim", "namespace": "ns"},
        })
    );
}

#[test]
fn a_unit_not_reported_reads_zero_and_a_negative_figure_too() {
    let answer = csi::NodeGetVolumeStatsResponse {
        usage: vec![
            usage(Unit::Bytes, 1000, -1, 400),
            usage(Unit::Unknown, 9, 9, 9),
        ],
        volume_condition: None,
    };
    let fs = to_volume_stats("data", None, &answer, STATS_ONLY, Timestamp(0))
        .unwrap()
        .fs;
    assert_eq!(
        (fs.capacity_bytes, fs.available_bytes, fs.used_bytes),
        (Some(1000), Some(0), Some(400))
    );
    assert_eq!(
        (fs.inodes, fs.inodes_free, fs.inodes_used),
        (Some(0), Some(0), Some(0))
    );
}

#[test]
fn an_answer_without_usage_is_an_error() {
    let answer = csi::NodeGetVolumeStatsResponse::default();
    let err = to_volume_stats("data", None, &answer, STATS_ONLY, Timestamp(0)).unwrap_err();
    assert!(matches!(err, VolumeStatsError::NoUsage), "{err}");
}

#[test]
fn the_condition_counts_only_from_a_driver_with_volume_condition() {
    let answer = csi::NodeGetVolumeStatsResponse {
        usage: vec![usage(Unit::Bytes, 1, 1, 0)],
        volume_condition: Some(csi::VolumeCondition {
            abnormal: true,
            message: "disk gone".into(),
        }),
    };
    let health = |capabilities| {
        to_volume_stats("data", None, &answer, capabilities, Timestamp(0))
            .unwrap()
            .volume_health_stats
    };
    assert_eq!(health(STATS_ONLY), None);
    let with_condition = NodeCapabilities {
        volume_condition: true,
        ..STATS_ONLY
    };
    assert_eq!(
        health(with_condition),
        Some(VolumeHealthStats { abnormal: true })
    );
    let healthy = csi::NodeGetVolumeStatsResponse {
        volume_condition: None,
        ..answer.clone()
    };
    let stats = to_volume_stats("data", None, &healthy, with_condition, Timestamp(0)).unwrap();
    assert_eq!(
        stats.volume_health_stats,
        Some(VolumeHealthStats { abnormal: false })
    );
}

/// A registered test driver and a published volume dir holding one 5-byte file.
struct Setup {
    _dir: tempfile::TempDir,
    driver: TestCsiDriver,
    csi: CsiPlugins,
    volume: PublishedVolume,
}

async fn setup(configure: impl FnOnce(&mut CsiDriverConfig)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CsiDriverConfig::new("drv", &dir.path().join("drv"), &dir.path().join("reg"));
    configure(&mut cfg);
    let driver = TestCsiDriver::start(cfg.clone()).unwrap();
    let csi = CsiPlugins::new(None, "n");
    csi.register("drv", &cfg.endpoint, &cfg.versions)
        .await
        .unwrap();
    let target = dir.path().join("mount");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("file"), "hello").unwrap();
    let volume = PublishedVolume {
        namespace: "ns".into(),
        pod_name: "pod".into(),
        claim_name: Some("claim".into()),
        driver: "drv".into(),
        volume_handle: "vol-1".into(),
        target,
        staging: Some(dir.path().join("staging")),
    };
    Setup {
        _dir: dir,
        driver,
        csi,
        volume,
    }
}

fn stats_calls(driver: &TestCsiDriver) -> Vec<String> {
    driver
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("NodeGetVolumeStats") || c == "NodeGetCapabilities")
        .collect()
}

#[tokio::test]
async fn a_driver_with_get_volume_stats_gives_its_figures() {
    let s = setup(|cfg| {
        cfg.volume_capacity_bytes = 1000;
        cfg.volume_inodes = 10;
        cfg.volume_condition = true;
    })
    .await;
    let stats = volume_stats(&s.csi, "data", &s.volume, true)
        .await
        .unwrap()
        .unwrap();
    let fs = &stats.fs;
    assert_eq!(
        (fs.capacity_bytes, fs.available_bytes, fs.used_bytes),
        (Some(1000), Some(995), Some(5))
    );
    assert_eq!(
        (fs.inodes, fs.inodes_free, fs.inodes_used),
        (Some(10), Some(8), Some(2))
    );
    assert_eq!(stats.name, "data");
    assert_eq!(stats.pvc_ref, Some(claim()));
    assert_eq!(
        stats.volume_health_stats,
        Some(VolumeHealthStats { abnormal: false })
    );
    // Without the CSIVolumeHealth gate the condition is left out, as upstream leaves it.
    let ungated = volume_stats(&s.csi, "data", &s.volume, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ungated.volume_health_stats, None);
    assert_eq!(ungated.fs.used_bytes, stats.fs.used_bytes);
    // Capabilities are asked once per registration, not per volume or round.
    let request = format!(
        "NodeGetVolumeStats vol-1 {} {}",
        s.volume.target.display(),
        s.volume.staging.as_ref().unwrap().display()
    );
    assert_eq!(
        stats_calls(&s.driver),
        ["NodeGetCapabilities".to_string(), request.clone(), request]
    );
}

#[tokio::test]
async fn a_driver_without_get_volume_stats_gives_no_figures() {
    let s = setup(|cfg| cfg.volume_stats = false).await;
    let stats = volume_stats(&s.csi, "data", &s.volume, true).await.unwrap();
    assert_eq!(stats, None);
    assert_eq!(stats_calls(&s.driver), ["NodeGetCapabilities"]);
}

#[tokio::test]
async fn a_failing_call_is_an_error_for_that_volume() {
    let mut s = setup(|_| {}).await;
    s.volume.target = s.volume.target.join("gone");
    let err = volume_stats(&s.csi, "data", &s.volume, true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VolumeStatsError::NodeGetVolumeStats(_)),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("NodeGetVolumeStats failed: rpc error: code = NotFound"),
        "{err}"
    );
    // A driver no longer registered cannot be asked.
    s.csi.deregister("drv");
    let err = volume_stats(&s.csi, "data", &s.volume, true)
        .await
        .unwrap_err();
    assert!(matches!(err, VolumeStatsError::Capabilities(_)), "{err}");
}
