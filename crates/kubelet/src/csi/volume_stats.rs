//! The figures of published CSI volumes (upstream's metricsCsi and volumeStatCalculator): every
//! volumeStatsAggPeriod, each volume whose driver offers GET_VOLUME_STATS is asked
//! NodeGetVolumeStats and the answers replace the cache /stats/summary and the
//! kubelet_volume_stats_* metrics read. A driver without the capability gives no figures for
//! its volumes; a failure leaves that one volume out until the next round.

use super::CsiPlugins;
use super::client::{self, NodeCapabilities};
use super::volumes::CsiVolumes;
use kubelet_plugin_apis::csi::v1 as csi;
use kubelet_stats::types::{FsStats, PvcReference, Timestamp, VolumeHealthStats, VolumeStats};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tracing::Instrument;

/// A CSI volume published for a pod: what its figures are asked with and reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedVolume {
    pub namespace: String,
    pub pod_name: String,
    /// The claim it came from; None for an inline volume, which has no pvcRef.
    pub claim_name: Option<String>,
    pub driver: String,
    pub volume_handle: String,
    /// The pod's publish path, NodeGetVolumeStats' volume_path.
    pub target: PathBuf,
    /// Where the volume is staged, for drivers with STAGE_UNSTAGE_VOLUME.
    pub staging: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum VolumeStatsError {
    #[error("driver name {0} not found in the list of registered CSI drivers")]
    NotRegistered(String),
    #[error("NodeGetCapabilities failed: {0}")]
    Capabilities(String),
    #[error("NodeGetVolumeStats failed: {0}")]
    NodeGetVolumeStats(String),
    #[error("failed to get usage from response. usage is nil")]
    NoUsage,
}

/// A usage figure; the spec's int64 cannot be negative in a valid answer, so one that is
/// reads as zero.
fn figure(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// NodeGetVolumeStats' answer as the summary's entry for the pod's volume `name`, as
/// upstream's parsePodVolumeStats fills it: every figure present, a unit the driver did not
/// report as zero. The condition counts only when the driver offers VOLUME_CONDITION.
pub fn to_volume_stats(
    name: &str,
    pvc_ref: Option<PvcReference>,
    answer: &csi::NodeGetVolumeStatsResponse,
    capabilities: NodeCapabilities,
    time: Timestamp,
) -> Result<VolumeStats, VolumeStatsError> {
    use csi::volume_usage::Unit;
    if answer.usage.is_empty() {
        return Err(VolumeStatsError::NoUsage);
    }
    let mut fs = FsStats {
        time,
        available_bytes: Some(0),
        capacity_bytes: Some(0),
        used_bytes: Some(0),
        inodes_free: Some(0),
        inodes: Some(0),
        inodes_used: Some(0),
    };
    for usage in &answer.usage {
        let (total, available, used) = (
            Some(figure(usage.total)),
            Some(figure(usage.available)),
            Some(figure(usage.used)),
        );
        match Unit::try_from(usage.unit) {
            Ok(Unit::Bytes) => {
                fs.capacity_bytes = total;
                fs.available_bytes = available;
                fs.used_bytes = used;
            }
            Ok(Unit::Inodes) => {
                fs.inodes = total;
                fs.inodes_free = available;
                fs.inodes_used = used;
            }
            _ => tracing::warn!(unit = usage.unit, "unknown unit in VolumeUsage"),
        }
    }
    let volume_health_stats = capabilities.volume_condition.then(|| VolumeHealthStats {
        abnormal: answer.volume_condition.as_ref().is_some_and(|c| c.abnormal),
    });
    Ok(VolumeStats {
        fs,
        name: name.to_string(),
        pvc_ref,
        volume_health_stats,
    })
}

/// The figures of the pod's volume `name`; None when its driver does not offer them.
async fn volume_stats(
    csi: &CsiPlugins,
    name: &str,
    volume: &PublishedVolume,
    volume_health: bool,
) -> Result<Option<VolumeStats>, VolumeStatsError> {
    let time = Timestamp::now();
    let mut capabilities = csi
        .capabilities(&volume.driver)
        .await
        .map_err(VolumeStatsError::Capabilities)?;
    // Upstream asks for the condition only under the CSIVolumeHealth gate.
    capabilities.volume_condition &= volume_health;
    if !capabilities.get_volume_stats {
        return Ok(None);
    }
    let endpoint = csi
        .endpoint(&volume.driver)
        .ok_or_else(|| VolumeStatsError::NotRegistered(volume.driver.clone()))?;
    let answer = client::node_get_volume_stats(
        &endpoint,
        &volume.volume_handle,
        &volume.target,
        volume.staging.as_deref(),
    )
    .await
    .map_err(VolumeStatsError::NodeGetVolumeStats)?;
    if let Some(condition) = answer.volume_condition.as_ref().filter(|c| c.abnormal)
        && capabilities.volume_condition
    {
        tracing::warn!(
            driver = volume.driver,
            volume = name,
            "volume condition abnormal: {}",
            condition.message
        );
    }
    let claim = volume.claim_name.as_ref().map(|claim| PvcReference {
        name: claim.clone(),
        namespace: volume.namespace.clone(),
    });
    to_volume_stats(name, claim, &answer, capabilities, time).map(Some)
}

impl CsiVolumes {
    /// One round: every published volume asked, the cache replaced with the answers.
    async fn refresh_volume_stats(&self, volume_health: bool) {
        let mut pods: HashMap<String, Vec<VolumeStats>> = HashMap::new();
        for (uid, name, volume) in self.published() {
            let span = tracing::info_span!(
                "volume_stats",
                pod_uid = uid,
                namespace = volume.namespace,
                name = volume.pod_name,
                volume = name
            );
            let stats = async {
                volume_stats(&self.csi, &name, &volume, volume_health)
                    .await
                    .inspect_err(
                        |error| tracing::warn!(%error, "failed to calculate volume metrics"),
                    )
            }
            .instrument(span)
            .await;
            if let Ok(Some(stats)) = stats {
                pods.entry(uid).or_default().push(stats);
            }
        }
        self.store_stats(pods);
    }

    /// Refreshes the figures every `period` (upstream's volumeStatsAggPeriod); zero disables
    /// it, leaving CSI volumes without figures. `volume_health` is the CSIVolumeHealth gate.
    pub async fn run_volume_stats(self: Arc<Self>, period: Duration, volume_health: bool) {
        if period.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.refresh_volume_stats(volume_health).await;
        }
    }
}

#[cfg(test)]
mod tests;
