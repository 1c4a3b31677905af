//! CPU usage in nano-cores, which a cumulative counter gives only against an earlier sample:
//! the runtime keeps each container's and sandbox's last one, as containerd does.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct CpuSamples {
    /// By container or sandbox id: cumulative usage (ns) and when it was read (ns since epoch).
    last: Mutex<HashMap<String, (u64, i64)>>,
}

impl CpuSamples {
    /// The usage rate since the previous sample of `id`, in billionths of a core; 0 for the
    /// first sample (containerd's answer too). An older or same-time sample changes nothing.
    pub(crate) fn nano_cores(&self, id: &str, usage_ns: u64, timestamp: i64) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&(previous, at)) = last.get(id) else {
            last.insert(id.to_string(), (usage_ns, timestamp));
            return 0;
        };
        let elapsed = timestamp - at;
        if elapsed <= 0 {
            return 0;
        }
        last.insert(id.to_string(), (usage_ns, timestamp));
        rate(usage_ns.saturating_sub(previous), elapsed as u64)
    }

    /// Forgets the samples of ids `live` no longer knows.
    pub(crate) fn retain(&self, live: impl Fn(&str) -> bool) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|id, _| live(id));
    }
}

/// `used` CPU nanoseconds over `elapsed` wall nanoseconds, in nano-cores.
pub(crate) fn rate(used: u64, elapsed: u64) -> u64 {
    (used as u128 * 1_000_000_000 / elapsed as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nano_cores_come_from_the_previous_sample() {
        let samples = CpuSamples::default();
        assert_eq!(samples.nano_cores("c", 1_000, 10_000), 0);
        // 500 ms of CPU over one second: half a core.
        assert_eq!(
            samples.nano_cores("c", 500_001_000, 1_000_010_000),
            500_000_000
        );
        // A sample no newer than the last one is not a rate.
        assert_eq!(samples.nano_cores("c", 600_000_000, 1_000_010_000), 0);
        assert_eq!(samples.nano_cores("other", 5, 5), 0);
        samples.retain(|id| id == "other");
        assert_eq!(samples.nano_cores("c", 700_000_000, 2_000_000_000), 0);
    }
}
