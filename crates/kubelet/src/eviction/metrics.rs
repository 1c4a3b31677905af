//! Upstream's eviction metrics: kubelet_evictions and kubelet_eviction_stats_age_seconds, by
//! eviction signal.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    eviction_signal: String,
}

type HistogramFamily = Family<SignalLabels, Histogram, fn() -> Histogram>;

fn stats_age_histogram() -> Histogram {
    Histogram::new(kubelet_stats::kubelet_metrics::DEFAULT_BUCKETS)
}

/// Cheap to clone: the clones count into the same series.
#[derive(Debug, Clone)]
pub struct EvictionMetrics {
    evictions: Family<SignalLabels, Counter>,
    stats_age: HistogramFamily,
}

impl Default for EvictionMetrics {
    fn default() -> Self {
        Self {
            evictions: Family::default(),
            stats_age: Family::new_with_constructor(stats_age_histogram),
        }
    }
}

impl EvictionMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kubelet_evictions",
            "[ALPHA] Cumulative number of pod evictions by eviction signal",
            self.evictions.clone(),
        );
        registry.register(
            "kubelet_eviction_stats_age_seconds",
            "[ALPHA] Time between when stats are collected, and when pod is evicted based on those stats by eviction signal",
            self.stats_age.clone(),
        );
    }

    pub fn evicted(&self, signal: &str) {
        self.evictions
            .get_or_create(&SignalLabels {
                eviction_signal: signal.to_string(),
            })
            .inc();
    }

    pub fn stats_age(&self, signal: &str, age: Duration) {
        self.stats_age
            .get_or_create(&SignalLabels {
                eviction_signal: signal.to_string(),
            })
            .observe(age.as_secs_f64());
    }
}
