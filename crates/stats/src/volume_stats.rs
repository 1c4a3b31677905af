//! Pod volume figures computed in the background (upstream's volumeStatCalculator cache): the
//! kubelet asks volume drivers for them every volumeStatsAggPeriod and /stats/summary and
//! /metrics serve what was last computed, so a scrape never waits on a driver.

use crate::types::{PvcReference, VolumeStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// The latest figures of each pod's volumes, by pod uid; clones share them.
#[derive(Debug, Clone, Default)]
pub struct VolumeStatsCache {
    pods: Arc<RwLock<HashMap<String, Vec<VolumeStats>>>>,
}

impl VolumeStatsCache {
    /// Replaces every pod's figures with one round's.
    pub fn store(&self, pods: HashMap<String, Vec<VolumeStats>>) {
        *self.pods.write().unwrap_or_else(|e| e.into_inner()) = pods;
    }

    /// Drops a pod's figures once its volumes are torn down.
    pub fn forget_pod(&self, uid: &str) {
        self.pods
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    pub fn pod(&self, uid: &str) -> Vec<VolumeStats> {
        self.pods
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
            .unwrap_or_default()
    }

    /// One figure set per claim: a claim several pods use is reported once, as upstream does.
    fn claims(&self) -> BTreeMap<PvcReference, VolumeStats> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        let mut claims = BTreeMap::new();
        for volume in pods.values().flatten() {
            if let Some(claim) = &volume.pvc_ref {
                claims
                    .entry(claim.clone())
                    .or_insert_with(|| volume.clone());
            }
        }
        claims
    }

    /// The kubelet_volume_stats_* families over these figures, for the kubelet's registry.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(VolumeStatsCollector(self.clone()))
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClaimLabels {
    namespace: String,
    persistentvolumeclaim: String,
}

type Figure = fn(&VolumeStats) -> Option<u64>;

/// Upstream's names and help texts (pkg/kubelet/metrics/collectors/volume_stats.go).
const FAMILIES: [(&str, &str, Figure); 6] = [
    (
        "kubelet_volume_stats_capacity_bytes",
        "[ALPHA] Capacity in bytes of the volume",
        |v| v.fs.capacity_bytes,
    ),
    (
        "kubelet_volume_stats_available_bytes",
        "[ALPHA] Number of available bytes in the volume",
        |v| v.fs.available_bytes,
    ),
    (
        "kubelet_volume_stats_used_bytes",
        "[ALPHA] Number of used bytes in the volume",
        |v| v.fs.used_bytes,
    ),
    (
        "kubelet_volume_stats_inodes",
        "[ALPHA] Maximum number of inodes in the volume",
        |v| v.fs.inodes,
    ),
    (
        "kubelet_volume_stats_inodes_free",
        "[ALPHA] Number of free inodes in the volume",
        |v| v.fs.inodes_free,
    ),
    (
        "kubelet_volume_stats_inodes_used",
        "[ALPHA] Number of used inodes in the volume",
        |v| v.fs.inodes_used,
    ),
];
const HEALTH_ABNORMAL: (&str, &str) = (
    "kubelet_volume_stats_health_status_abnormal",
    "[ALPHA] Abnormal volume health status. The count is either 1 or 0. 1 indicates the volume is unhealthy, 0 indicates volume is healthy",
);

#[derive(Debug)]
struct VolumeStatsCollector(VolumeStatsCache);

fn encode_family(
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    series: &[(ClaimLabels, i64)],
) -> Result<(), std::fmt::Error> {
    if series.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in series {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for VolumeStatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let claims: Vec<(ClaimLabels, VolumeStats)> = self
            .0
            .claims()
            .into_iter()
            .map(|(claim, stats)| {
                let labels = ClaimLabels {
                    namespace: claim.namespace,
                    persistentvolumeclaim: claim.name,
                };
                (labels, stats)
            })
            .collect();
        for (name, help, figure) in FAMILIES {
            let series: Vec<(ClaimLabels, i64)> = claims
                .iter()
                .filter_map(|(labels, stats)| Some((labels.clone(), gauge(figure(stats)?))))
                .collect();
            encode_family(&mut encoder, (name, help), &series)?;
        }
        let health: Vec<(ClaimLabels, i64)> = claims
            .iter()
            .filter_map(|(labels, stats)| {
                let health = stats.volume_health_stats.as_ref()?;
                Some((labels.clone(), i64::from(health.abnormal)))
            })
            .collect();
        encode_family(&mut encoder, HEALTH_ABNORMAL, &health)
    }
}
