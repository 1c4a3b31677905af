//! Eviction thresholds and their bookkeeping across rounds (upstream ParseThresholdConfig,
//! thresholdsMet, thresholdsFirstObservedAt, thresholdsMetGracePeriod and the node conditions
//! held for the pressure transition period).

use super::signals::{Condition, Observations, describe};
use kubelet_config::KubeletConfig;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// A threshold amount: bytes (or a count), or a share of the signal's capacity.
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    /// The quantity as configured, for messages, and its value.
    Quantity(String, u64),
    Share(f64),
}

impl Amount {
    /// Upstream's parseThresholdStatement: `0%` and `100%` mean no threshold.
    fn parse(text: &str) -> Option<Self> {
        match text.strip_suffix('%') {
            Some(_) if text == "0%" || text == "100%" => None,
            Some(percent) => percent
                .parse::<f64>()
                .ok()
                .map(|p| Amount::Share(p / 100.0)),
            None => {
                let value = kubelet_quantity::value(text).ok()?;
                let canonical =
                    kubelet_quantity::canonical_string(text).unwrap_or_else(|_| text.to_string());
                Some(Amount::Quantity(canonical, u64::try_from(value).ok()?))
            }
        }
    }

    /// Upstream GetThresholdQuantity: the amount against this capacity.
    pub fn of(&self, capacity: u64) -> u64 {
        match self {
            Amount::Quantity(_, value) => *value,
            Amount::Share(share) => (capacity as f64 * share) as u64,
        }
    }

    /// As upstream prints the threshold quantity in an eviction message: a quantity as
    /// configured, a share as the bytes it comes to.
    pub fn display(&self, capacity: u64) -> String {
        match self {
            Amount::Quantity(text, _) => text.clone(),
            Amount::Share(_) => kubelet_quantity::binary_string(self.of(capacity)),
        }
    }
}

/// `available < amount` is pressure; a soft threshold (non-zero grace period) must hold that
/// long before it evicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub signal: String,
    pub amount: Amount,
    pub grace_period: Duration,
    pub min_reclaim: Option<Amount>,
}

impl Threshold {
    pub fn is_hard(&self) -> bool {
        self.grace_period.is_zero()
    }
}

/// The configured hard thresholds, then the soft ones (the configuration validated them, and
/// refused a soft threshold without its grace period).
pub fn from_config(cfg: &KubeletConfig) -> Vec<Threshold> {
    let parse = |map: &BTreeMap<String, String>, grace: &dyn Fn(&str) -> Duration| {
        map.iter()
            .filter_map(|(signal, text)| {
                Some(Threshold {
                    signal: signal.clone(),
                    amount: Amount::parse(text)?,
                    grace_period: grace(signal),
                    min_reclaim: cfg
                        .eviction_minimum_reclaim
                        .get(signal)
                        .and_then(|m| Amount::parse(m)),
                })
            })
            .collect::<Vec<_>>()
    };
    let mut all = parse(&cfg.eviction_hard, &|_| Duration::ZERO);
    all.extend(parse(&cfg.eviction_soft, &|signal| {
        cfg.eviction_soft_grace_period
            .get(signal)
            .copied()
            .unwrap_or_default()
    }));
    all
}

/// Upstream thresholdsMet: the thresholds whose signal is below them; with
/// `enforce_min_reclaim`, below them plus their minimum reclaim.
pub fn met(
    thresholds: &[Threshold],
    seen: &Observations,
    enforce_min_reclaim: bool,
) -> Vec<Threshold> {
    thresholds
        .iter()
        .filter(|t| {
            let Some(signal) = seen.signals.get(t.signal.as_str()) else {
                return false;
            };
            let mut quantity = t.amount.of(signal.capacity);
            if enforce_min_reclaim && let Some(min) = &t.min_reclaim {
                quantity += min.of(signal.capacity);
            }
            quantity > signal.available
        })
        .cloned()
        .collect()
}

fn merge(mut into: Vec<Threshold>, more: Vec<Threshold>) -> Vec<Threshold> {
    for t in more {
        if !into.contains(&t) {
            into.push(t);
        }
    }
    into
}

/// What one round concluded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// Conditions to report, in a fixed order: met now or within the transition period.
    pub conditions: Vec<Condition>,
    /// Thresholds met for at least their grace period: these drive eviction, memory first.
    pub to_reclaim: Vec<Threshold>,
}

/// The thresholds' history across rounds.
#[derive(Debug)]
pub struct Tracker {
    thresholds: Vec<Threshold>,
    transition_period: Duration,
    first_observed: Vec<(Threshold, Instant)>,
    conditions_last_observed: BTreeMap<Condition, Instant>,
    /// Thresholds that drove the last round: they stay until their minimum reclaim is met.
    met: Vec<Threshold>,
}

impl Tracker {
    pub fn new(thresholds: Vec<Threshold>, transition_period: Duration) -> Self {
        Self {
            thresholds,
            transition_period,
            first_observed: Vec::new(),
            conditions_last_observed: BTreeMap::new(),
            met: Vec::new(),
        }
    }

    pub fn thresholds(&self) -> &[Threshold] {
        &self.thresholds
    }

    /// Upstream synchronize's bookkeeping for observations made `now`.
    pub fn observe(&mut self, seen: &Observations, now: Instant) -> Round {
        let mut crossed = met(&self.thresholds, seen, false);
        if !self.met.is_empty() {
            crossed = merge(crossed, met(&self.met, seen, true));
        }
        self.first_observed = crossed
            .iter()
            .map(|t| {
                let at = self
                    .first_observed
                    .iter()
                    .find(|(old, _)| old == t)
                    .map_or(now, |(_, at)| *at);
                (t.clone(), at)
            })
            .collect();
        for t in &crossed {
            if let Some((condition, _)) = describe(&t.signal) {
                self.conditions_last_observed.insert(condition, now);
            }
        }
        let transition = self.transition_period;
        self.conditions_last_observed
            .retain(|_, at| now.duration_since(*at) < transition);
        let conditions = self.conditions_last_observed.keys().copied().collect();
        let mut to_reclaim: Vec<Threshold> = self
            .first_observed
            .iter()
            .filter(|(t, at)| now.duration_since(*at) >= t.grace_period)
            .map(|(t, _)| t.clone())
            .collect();
        self.met = to_reclaim.clone();
        // Upstream byEvictionPriority: memory before everything else.
        to_reclaim.sort_by_key(|t| !matches!(describe(&t.signal), Some((Condition::Memory, _))));
        Round {
            conditions,
            to_reclaim,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::signals::Signal;
    use super::*;

    fn seen(pairs: &[(&'static str, u64, u64)]) -> Observations {
        Observations {
            signals: pairs
                .iter()
                .map(|&(n, available, capacity)| {
                    (
                        n,
                        Signal {
                            available,
                            capacity,
                        },
                    )
                })
                .collect(),
        }
    }

    fn threshold(signal: &str, amount: &str, grace: u64) -> Threshold {
        Threshold {
            signal: signal.into(),
            amount: Amount::parse(amount).unwrap(),
            grace_period: Duration::from_secs(grace),
            min_reclaim: None,
        }
    }

    #[test]
    fn amounts_in_bytes_and_percent() {
        let t = vec![
            threshold("memory.available", "100Mi", 0),
            threshold("nodefs.available", "10%", 0),
        ];
        let calm = seen(&[
            ("memory.available", 200 << 20, 1 << 30),
            ("nodefs.available", 20, 100),
        ]);
        assert!(met(&t, &calm, false).is_empty());
        let tight = seen(&[
            ("memory.available", 50 << 20, 1 << 30),
            ("nodefs.available", 9, 100),
        ]);
        assert_eq!(met(&t, &tight, false).len(), 2);
        // An unmeasured signal never pressures; 0% and 100% are no threshold at all.
        assert!(met(&t, &seen(&[]), false).is_empty());
        assert_eq!(Amount::parse("0%"), None);
        assert_eq!(Amount::parse("100%"), None);
        assert_eq!(t[0].amount.display(1 << 30), "100Mi");
        assert_eq!(t[1].amount.display(1 << 30), "107374182");
    }

    #[test]
    fn configuration_gives_hard_then_soft_with_their_reclaim() {
        let args = [
            "--eviction-hard=memory.available<100Mi,nodefs.available<0%",
            "--eviction-soft=memory.available<1Gi",
            "--eviction-soft-grace-period=memory.available=30s",
            "--eviction-minimum-reclaim=memory.available=50Mi",
        ];
        let cfg = match kubelet_config::parse_args(args.iter().map(|a| a.to_string())) {
            Ok(kubelet_config::Command::Run(cfg)) => *cfg,
            other => panic!("{other:?}"),
        };
        let all = from_config(&cfg);
        assert_eq!(all.len(), 2);
        assert!(all[0].is_hard() && !all[1].is_hard());
        assert_eq!(all[1].grace_period, Duration::from_secs(30));
        assert_eq!(all[0].min_reclaim.as_ref().map(|m| m.of(0)), Some(50 << 20));
    }

    #[tokio::test(start_paused = true)]
    async fn soft_thresholds_wait_for_their_grace_period() {
        let mut tracker = Tracker::new(
            vec![threshold("memory.available", "1Gi", 60)],
            Duration::from_secs(300),
        );
        let low = seen(&[("memory.available", 512 << 20, 8 << 30)]);
        let start = Instant::now();
        let first = tracker.observe(&low, start);
        // The condition is reported at once; eviction waits for the grace period.
        assert_eq!(first.conditions, vec![Condition::Memory]);
        assert!(first.to_reclaim.is_empty());
        let later = tracker.observe(&low, start + Duration::from_secs(59));
        assert!(later.to_reclaim.is_empty());
        let due = tracker.observe(&low, start + Duration::from_secs(60));
        assert_eq!(due.to_reclaim.len(), 1);
        // Recovering resets the clock.
        let fine = seen(&[("memory.available", 4 << 30, 8 << 30)]);
        tracker.observe(&fine, start + Duration::from_secs(70));
        let again = tracker.observe(&low, start + Duration::from_secs(80));
        assert!(again.to_reclaim.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn conditions_are_held_for_the_transition_period() {
        let mut tracker = Tracker::new(
            vec![threshold("nodefs.available", "10%", 0)],
            Duration::from_secs(30),
        );
        let full = seen(&[("nodefs.available", 5, 100)]);
        let free = seen(&[("nodefs.available", 50, 100)]);
        let start = Instant::now();
        let round = tracker.observe(&full, start);
        assert_eq!(round.conditions, vec![Condition::Disk]);
        assert_eq!(round.to_reclaim.len(), 1);
        let held = tracker.observe(&free, start + Duration::from_secs(29));
        assert_eq!(held.conditions, vec![Condition::Disk]);
        assert!(held.to_reclaim.is_empty());
        let cleared = tracker.observe(&free, start + Duration::from_secs(30));
        assert!(cleared.conditions.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn minimum_reclaim_keeps_a_threshold_until_it_is_met() {
        let mut t = threshold("memory.available", "100Mi", 0);
        t.min_reclaim = Some(Amount::parse("200Mi").unwrap());
        let mut tracker = Tracker::new(vec![t], Duration::ZERO);
        let now = Instant::now();
        let low = seen(&[("memory.available", 50 << 20, 8 << 30)]);
        assert_eq!(tracker.observe(&low, now).to_reclaim.len(), 1);
        // Above the threshold but not above threshold + minimum reclaim: still reclaiming.
        let some = seen(&[("memory.available", 250 << 20, 8 << 30)]);
        assert_eq!(tracker.observe(&some, now).to_reclaim.len(), 1);
        let enough = seen(&[("memory.available", 400 << 20, 8 << 30)]);
        assert!(tracker.observe(&enough, now).to_reclaim.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_reclaimed_first() {
        let mut tracker = Tracker::new(
            vec![
                threshold("nodefs.available", "10%", 0),
                threshold("memory.available", "100Mi", 0),
            ],
            Duration::from_secs(1),
        );
        let both = seen(&[
            ("nodefs.available", 5, 100),
            ("memory.available", 1 << 20, 8 << 30),
        ]);
        let round = tracker.observe(&both, Instant::now());
        assert_eq!(round.to_reclaim[0].signal, "memory.available");
        assert_eq!(round.conditions, vec![Condition::Memory, Condition::Disk]);
    }
}
