//! How the shutdown grace period splits between regular and critical pods (upstream
//! migrateConfig: the two config fields become two priority groups counted in whole seconds).

use std::time::Duration;

use crate::ShutdownConfig;

/// The time each group of pods gets once the shutdown starts; regular pods go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownBudget {
    /// For pods below the system-critical priority: grace_period - critical_grace_period.
    pub non_critical: Duration,
    /// For pods at or above the system-critical priority: critical_grace_period.
    pub critical: Duration,
}

impl ShutdownBudget {
    /// `None` when the config turns the feature off: no grace period, or a critical share larger
    /// than the whole (upstream then logs that node shutdown will be immediate).
    pub fn from_config(cfg: &ShutdownConfig) -> Option<Self> {
        if cfg.grace_period.is_zero() {
            return None;
        }
        let non_critical = cfg.grace_period.checked_sub(cfg.critical_grace_period)?;
        let critical = cfg.grace_period - non_critical;
        Some(Self {
            non_critical: whole_seconds(non_critical),
            critical: whole_seconds(critical),
        })
    }

    /// The inhibit delay the kubelet asks logind for: the sum of both groups.
    pub fn total(&self) -> Duration {
        self.non_critical + self.critical
    }
}

/// Upstream stores each group's period as int64 seconds, dropping any fraction.
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(grace_ms: u64, critical_ms: u64) -> Option<ShutdownBudget> {
        ShutdownBudget::from_config(&ShutdownConfig::new(
            Duration::from_millis(grace_ms),
            Duration::from_millis(critical_ms),
        ))
    }

    #[test]
    fn splits_grace_between_groups() {
        let b = budget(30_000, 10_000).unwrap();
        assert_eq!(b.non_critical, Duration::from_secs(20));
        assert_eq!(b.critical, Duration::from_secs(10));
        assert_eq!(b.total(), Duration::from_secs(30));
    }

    #[test]
    fn zero_grace_turns_the_feature_off() {
        assert_eq!(budget(0, 0), None);
    }

    #[test]
    fn critical_share_above_the_whole_turns_the_feature_off() {
        assert_eq!(budget(10_000, 20_000), None);
    }

    #[test]
    fn critical_share_may_be_zero_or_everything() {
        let all_regular = budget(15_000, 0).unwrap();
        assert_eq!(
            (all_regular.non_critical, all_regular.critical),
            (Duration::from_secs(15), Duration::ZERO)
        );
        let all_critical = budget(15_000, 15_000).unwrap();
        assert_eq!(
            (all_critical.non_critical, all_critical.critical),
            (Duration::ZERO, Duration::from_secs(15))
        );
    }

    #[test]
    fn fractions_of_a_second_are_dropped_per_group() {
        let b = budget(10_700, 3_500).unwrap();
        assert_eq!(b.non_critical, Duration::from_secs(7));
        assert_eq!(b.critical, Duration::from_secs(3));
        assert_eq!(b.total(), Duration::from_secs(10));
    }
}
