//! Volumes served by the node's volume drivers: persistentVolumeClaim volumes (the claim is
//! resolved to its bound PersistentVolume and set up by whatever serves that volume's type) and
//! CSI ephemeral inline volumes (`csi:` in the pod), both by the kubelet's CSI volumes behind
//! this seam, since they need the API server and the drivers. Teardown goes by what is on disk,
//! so it works after a restart.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{CSIVolumeSource, PersistentVolumeClaimVolumeSource, Pod, Volume};
use std::path::PathBuf;

/// A set-up claim volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMount {
    /// What the pod's containers bind.
    pub host_path: PathBuf,
    pub read_only: bool,
    /// A raw block volume (PV volumeMode Block): `host_path` leads to its device node, which
    /// containers get through volumeDevices, never through volumeMounts.
    pub block: bool,
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

    /// Sets up (or finds set up) the CSI ephemeral inline volume `volume` of `pod`, whose source
    /// is `csi`; safe to repeat.
    async fn set_up_inline(
        &self,
        pod: &Pod,
        volume: &Volume,
        csi: &CSIVolumeSource,
    ) -> Result<ClaimMount, String>;

    /// Tears down every claim and inline volume pod `pod_uid` has on disk; an error leaves what is left
    /// for the next try.
    async fn tear_down(&self, pod_uid: &str) -> Result<(), String>;
}

/// No driver support: claim and inline CSI volumes are refused and there is never anything to tear down.
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

    async fn set_up_inline(
        &self,
        _: &Pod,
        _: &Volume,
        _: &CSIVolumeSource,
    ) -> Result<ClaimMount, String> {
        Err("volume type csi is not supported yet".into())
    }

    async fn tear_down(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}
