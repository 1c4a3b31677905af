//! The kubelet's calls to a CSI driver's Node service, over its unix socket. Failures read as
//! Go's gRPC errors do, since that is how upstream's messages show them.

use super::nodeinfo::DriverNodeInfo;
use kubelet_plugin_apis::csi::v1 as csi;
use kubelet_plugin_apis::csi::v1::node_client::NodeClient;
use kubelet_plugin_apis::unix;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tonic::transport::Channel;

/// Upstream's csiTimeout for calls to a driver.
pub const CSI_TIMEOUT: Duration = Duration::from_secs(120);

fn node(endpoint: &Path) -> NodeClient<Channel> {
    NodeClient::new(unix::channel(endpoint))
}

/// Runs one call with upstream's timeout.
async fn call<T>(
    f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(CSI_TIMEOUT, f).await {
        Err(_) => Err("rpc error: code = DeadlineExceeded desc = context deadline exceeded".into()),
        Ok(Err(status)) => Err(format!(
            "rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        )),
        Ok(Ok(answer)) => Ok(answer.into_inner()),
    }
}

/// NodeGetInfo: the driver's id for this node, its volume limit and its accessible topology.
pub async fn node_get_info(endpoint: &Path) -> Result<DriverNodeInfo, String> {
    let answer = call(node(endpoint).node_get_info(csi::NodeGetInfoRequest {})).await?;
    Ok(DriverNodeInfo {
        node_id: answer.node_id,
        max_volumes: answer.max_volumes_per_node,
        topology: answer
            .accessible_topology
            .map(|t| t.segments)
            .unwrap_or_default(),
    })
}

/// The Node service capabilities the kubelet acts on (NodeGetCapabilities).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCapabilities {
    pub stage_unstage_volume: bool,
    pub get_volume_stats: bool,
    pub volume_condition: bool,
    /// The driver mounts with the pod's fsGroup (volume_mount_group).
    pub volume_mount_group: bool,
    /// The driver tells SINGLE_NODE_SINGLE_WRITER from SINGLE_NODE_MULTI_WRITER.
    pub single_node_multi_writer: bool,
}

pub async fn node_get_capabilities(endpoint: &Path) -> Result<NodeCapabilities, String> {
    use csi::node_service_capability::{Type, rpc};
    let answer =
        call(node(endpoint).node_get_capabilities(csi::NodeGetCapabilitiesRequest {})).await?;
    let offered: Vec<i32> = answer
        .capabilities
        .iter()
        .filter_map(|c| c.r#type.as_ref().map(|Type::Rpc(r)| r.r#type))
        .collect();
    let has = |t: rpc::Type| offered.contains(&(t as i32));
    Ok(NodeCapabilities {
        stage_unstage_volume: has(rpc::Type::StageUnstageVolume),
        get_volume_stats: has(rpc::Type::GetVolumeStats),
        volume_condition: has(rpc::Type::VolumeCondition),
        volume_mount_group: has(rpc::Type::VolumeMountGroup),
        single_node_multi_writer: has(rpc::Type::SingleNodeMultiWriter),
    })
}

/// NodeGetVolumeStats of the volume published at `volume_path` (and staged at
/// `staging_path`, if it is).
pub async fn node_get_volume_stats(
    endpoint: &Path,
    volume_id: &str,
    volume_path: &Path,
    staging_path: Option<&Path>,
) -> Result<csi::NodeGetVolumeStatsResponse, String> {
    let request = csi::NodeGetVolumeStatsRequest {
        volume_id: volume_id.to_string(),
        volume_path: volume_path.display().to_string(),
        staging_target_path: staging_path
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    call(node(endpoint).node_get_volume_stats(request)).await
}

/// What NodeStageVolume and NodePublishVolume share.
#[derive(Debug, Clone, Default)]
pub struct VolumeRequest {
    pub volume_id: String,
    pub publish_context: BTreeMap<String, String>,
    pub volume_context: BTreeMap<String, String>,
    pub fs_type: String,
    pub mount_flags: Vec<String>,
    pub access_mode: i32,
    /// The pod's fsGroup for a driver that mounts with it, else empty.
    pub volume_mount_group: String,
    /// A raw block volume: the block access type, fs type and mount flags unused.
    pub block: bool,
}

impl VolumeRequest {
    fn capability(&self) -> csi::VolumeCapability {
        use csi::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
        let access_type = if self.block {
            AccessType::Block(BlockVolume {})
        } else {
            AccessType::Mount(MountVolume {
                fs_type: self.fs_type.clone(),
                mount_flags: self.mount_flags.clone(),
                volume_mount_group: self.volume_mount_group.clone(),
            })
        };
        csi::VolumeCapability {
            access_type: Some(access_type),
            access_mode: Some(AccessMode {
                mode: self.access_mode,
            }),
        }
    }
}

pub async fn node_stage(
    endpoint: &Path,
    volume: &VolumeRequest,
    staging_path: &Path,
    secrets: BTreeMap<String, String>,
) -> Result<(), String> {
    let request = csi::NodeStageVolumeRequest {
        volume_id: volume.volume_id.clone(),
        publish_context: volume.publish_context.clone(),
        staging_target_path: staging_path.display().to_string(),
        volume_capability: Some(volume.capability()),
        secrets,
        volume_context: volume.volume_context.clone(),
    };
    call(node(endpoint).node_stage_volume(request))
        .await
        .map(drop)
}

pub async fn node_unstage(
    endpoint: &Path,
    volume_id: &str,
    staging_path: &Path,
) -> Result<(), String> {
    let request = csi::NodeUnstageVolumeRequest {
        volume_id: volume_id.to_string(),
        staging_target_path: staging_path.display().to_string(),
    };
    call(node(endpoint).node_unstage_volume(request))
        .await
        .map(drop)
}

pub async fn node_publish(
    endpoint: &Path,
    volume: &VolumeRequest,
    staging_path: Option<&Path>,
    target: &Path,
    readonly: bool,
    secrets: BTreeMap<String, String>,
) -> Result<(), String> {
    let request = csi::NodePublishVolumeRequest {
        volume_id: volume.volume_id.clone(),
        publish_context: volume.publish_context.clone(),
        staging_target_path: staging_path
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        target_path: target.display().to_string(),
        volume_capability: Some(volume.capability()),
        readonly,
        secrets,
        volume_context: volume.volume_context.clone(),
    };
    call(node(endpoint).node_publish_volume(request))
        .await
        .map(drop)
}

pub async fn node_unpublish(endpoint: &Path, volume_id: &str, target: &Path) -> Result<(), String> {
    let request = csi::NodeUnpublishVolumeRequest {
        volume_id: volume_id.to_string(),
        target_path: target.display().to_string(),
    };
    call(node(endpoint).node_unpublish_volume(request))
        .await
        .map(drop)
}
