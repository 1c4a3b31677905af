//! The test CSI driver against the CSI v1 client generated in kubelet-plugin-apis: registration
//! info, identity, node info, and a volume staged, published (read-write and read-only), measured,
//! unpublished and unstaged, with real bind mounts (so it needs root).

use kubelet_plugin_apis::csi::v1 as csi;
use kubelet_plugin_apis::pluginregistration::v1 as reg;
use kubelet_plugin_apis::unix;
use kubelet_testkit::csi_driver::{CsiDriverConfig, TestCsiDriver};
use kubelet_testkit::preflight::require_root;
use std::collections::BTreeMap;
use std::path::Path;

const DRIVER: &str = "csi.test.kubelet-rs.io";

fn mount_capability() -> Option<csi::VolumeCapability> {
    Some(csi::VolumeCapability {
        access_type: Some(csi::volume_capability::AccessType::Mount(
            csi::volume_capability::MountVolume::default(),
        )),
        access_mode: Some(csi::volume_capability::AccessMode {
            mode: csi::volume_capability::access_mode::Mode::SingleNodeWriter as i32,
        }),
    })
}

/// Unmounts what the driver mounted under the test's dir, should the test stop half way.
struct Unmount(Vec<std::path::PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        for path in &self.0 {
            while mounted(path) {
                if nix::mount::umount2(path.as_path(), nix::mount::MntFlags::MNT_DETACH).is_err() {
                    break;
                }
            }
        }
    }
}

fn mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
}

#[tokio::test]
async fn the_driver_registers_stages_publishes_and_tears_down_a_volume() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CsiDriverConfig::new(DRIVER, &dir.path().join("driver"), &dir.path().join("reg"));
    cfg.topology = BTreeMap::from([("topology.test/zone".to_string(), "z1".to_string())]);
    cfg.max_volumes = 7;
    let driver = TestCsiDriver::start(cfg.clone()).unwrap();

    let mut registration = reg::registration_client::RegistrationClient::new(unix::channel(
        &cfg.registration_socket(),
    ));
    let info = registration
        .get_info(reg::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.r#type, "CSIPlugin");
    assert_eq!(info.name, DRIVER);
    assert_eq!(info.endpoint, cfg.endpoint.display().to_string());
    assert_eq!(info.supported_versions, vec!["1.0.0".to_string()]);

    let channel = unix::channel(&cfg.endpoint);
    let mut identity = csi::identity_client::IdentityClient::new(channel.clone());
    let plugin = identity
        .get_plugin_info(csi::GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plugin.name, DRIVER);
    let probe = identity
        .probe(csi::ProbeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(probe.ready, Some(true));

    let mut node = csi::node_client::NodeClient::new(channel);
    let node_info = node
        .node_get_info(csi::NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node_info.node_id, format!("{DRIVER}-node"));
    assert_eq!(node_info.max_volumes_per_node, 7);
    assert_eq!(
        node_info.accessible_topology.unwrap().segments["topology.test/zone"],
        "z1"
    );
    let caps = node
        .node_get_capabilities(csi::NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let stage = csi::node_service_capability::rpc::Type::StageUnstageVolume as i32;
    assert!(caps.capabilities.iter().any(|c| matches!(
        c.r#type,
        Some(csi::node_service_capability::Type::Rpc(r)) if r.r#type == stage
    )));

    let staging = dir.path().join("globalmount");
    std::fs::create_dir(&staging).unwrap();
    let target = dir.path().join("pod/mount");
    let ro_target = dir.path().join("pod/ro");
    std::fs::create_dir(dir.path().join("pod")).unwrap();
    let _unmount = Unmount(vec![target.clone(), ro_target.clone(), staging.clone()]);

    // Publishing before staging is refused: the volume is not staged.
    let early = node
        .node_publish_volume(csi::NodePublishVolumeRequest {
            volume_id: "vol-1".into(),
            staging_target_path: staging.display().to_string(),
            target_path: target.display().to_string(),
            volume_capability: mount_capability(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);

    let stage_request = csi::NodeStageVolumeRequest {
        volume_id: "vol-1".into(),
        staging_target_path: staging.display().to_string(),
        volume_capability: mount_capability(),
        ..Default::default()
    };
    node.node_stage_volume(stage_request.clone()).await.unwrap();
    // Idempotent: staging again mounts nothing more.
    node.node_stage_volume(stage_request).await.unwrap();
    assert!(mounted(&staging));

    for (path, readonly) in [(&target, false), (&ro_target, true)] {
        node.node_publish_volume(csi::NodePublishVolumeRequest {
            volume_id: "vol-1".into(),
            staging_target_path: staging.display().to_string(),
            target_path: path.display().to_string(),
            volume_capability: mount_capability(),
            readonly,
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(mounted(path));
    }
    std::fs::write(target.join("data"), "written through the volume").unwrap();
    assert_eq!(
        std::fs::read_to_string(cfg.data_dir.join("vol-1/data")).unwrap(),
        "written through the volume"
    );
    assert_eq!(
        std::fs::read_to_string(ro_target.join("data")).unwrap(),
        "written through the volume"
    );
    let refused = std::fs::write(ro_target.join("other"), "x").unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(nix::libc::EROFS));

    let stats = node
        .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
            volume_id: "vol-1".into(),
            volume_path: target.display().to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let bytes = stats
        .usage
        .iter()
        .find(|u| u.unit == csi::volume_usage::Unit::Bytes as i32)
        .unwrap();
    assert!(bytes.total > 0 && bytes.used + bytes.available <= bytes.total);

    for path in [&target, &ro_target] {
        let request = csi::NodeUnpublishVolumeRequest {
            volume_id: "vol-1".into(),
            target_path: path.display().to_string(),
        };
        node.node_unpublish_volume(request.clone()).await.unwrap();
        // Idempotent: the target is gone already.
        node.node_unpublish_volume(request).await.unwrap();
        assert!(!path.exists(), "{} removed", path.display());
    }
    node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
        volume_id: "vol-1".into(),
        staging_target_path: staging.display().to_string(),
    })
    .await
    .unwrap();
    assert!(!mounted(&staging));
    assert!(staging.exists(), "the CO's staging dir stays");

    let calls = driver.calls();
    let volume_calls: Vec<&str> = calls
        .iter()
        .filter(|c| {
            c.starts_with("NodeStage")
                || c.starts_with("NodePublish")
                || c.starts_with("NodeUnpublish")
                || c.starts_with("NodeUnstage")
        })
        .map(|c| c.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        volume_calls,
        [
            "NodePublishVolume",
            "NodeStageVolume",
            "NodeStageVolume",
            "NodePublishVolume",
            "NodePublishVolume",
            "NodeUnpublishVolume",
            "NodeUnpublishVolume",
            "NodeUnpublishVolume",
            "NodeUnpublishVolume",
            "NodeUnstageVolume",
        ]
    );
    assert!(calls.contains(&format!(
        "NodePublishVolume vol-1 {} ro",
        ro_target.display()
    )));

    let reg_socket = cfg.registration_socket();
    drop(driver);
    assert!(
        !reg_socket.exists() && !cfg.endpoint.exists(),
        "sockets removed"
    );
}
