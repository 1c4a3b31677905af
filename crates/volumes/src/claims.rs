//! persistentVolumeClaim volumes: the claim is resolved to its bound PersistentVolume and set up
//! by whatever serves that volume's type (the kubelet's CSI volumes), behind this seam, since it
//! needs the API server and the node's volume drivers. Teardown goes by what is on disk, so it
//! works after a restart.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, Volume};
use std::path::PathBuf;

/// A set-up claim volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMount {
    /// What the pod's containers bind.
    pub host_path: PathBuf,
    pub read_only: bool,
}

#[async_trait]
pub trait ClaimVolumes: Send + Sync + 'static {
    /// Sets up (or finds set up) the volume bound to `claim` for `pod`; safe to repeat.
    async fn set_up(
        &self,
        pod: &Pod,
        volume: &Volume,
        claim: &PersistentVolumeClaimVolumeSource,
    ) -> Result<ClaimMount, String>;

    /// Tears down every claim volume pod `pod_uid` has on disk; an error leaves what is left
    /// for the next try.
    async fn tear_down(&self, pod_uid: &str) -> Result<(), String>;
}

/// No claim support: claim volumes are refused and there is never anything to tear down.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClaims;

#[async_trait]
impl ClaimVolumes for NoClaims {
    async fn set_up(
        &self,
        _: &Pod,
        _: &Volume,
        _: &PersistentVolumeClaimVolumeSource,
    ) -> Result<ClaimMount, String> {
        Err("volume type persistentVolumeClaim is not supported yet".into())
    }

    async fn tear_down(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}
