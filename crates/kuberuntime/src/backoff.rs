//! Exponential back-off per key (upstream flowcontrol.Backoff), on tokio time so tests can pause it.

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Container restart back-off as upstream: 10 s doubling to 5 min.
pub const CONTAINER_BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const CONTAINER_BACKOFF_MAX: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

/// Tracks a back-off per key. An entry untouched for twice the maximum is forgotten, which is
/// what resets a container's back-off after it has run cleanly for 10 minutes.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    pub fn container() -> Self {
        Self::new(CONTAINER_BACKOFF_INITIAL, CONTAINER_BACKOFF_MAX)
    }

    /// Records one more failure of `key` at `now` and returns the new back-off.
    pub fn next(&mut self, key: &str, now: Instant) -> Duration {
        let (initial, max) = (self.initial, self.max);
        let expired = |e: &Entry| now.saturating_duration_since(e.last_update) > 2 * max;
        match self.entries.get_mut(key) {
            Some(e) if !expired(e) => {
                e.backoff = (e.backoff * 2).min(max);
                e.last_update = now;
                e.backoff
            }
            _ => {
                self.entries.insert(
                    key.to_string(),
                    Entry {
                        backoff: initial,
                        last_update: now,
                    },
                );
                initial
            }
        }
    }

    /// How long `key` must still wait after an event at `since`, or `None` when it may go now.
    pub fn remaining(&self, key: &str, since: Instant, now: Instant) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if now.saturating_duration_since(e.last_update) > 2 * self.max {
            return None;
        }
        let until = since + e.backoff;
        (until > now).then(|| until - now)
    }

    /// How long `key` must still wait, counted from its last recorded failure.
    pub fn remaining_since_update(&self, key: &str, now: Instant) -> Option<Duration> {
        let since = self.entries.get(key)?.last_update;
        self.remaining(key, since, now)
    }

    pub fn current(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.backoff)
    }

    /// Forgets entries not updated for twice the maximum (upstream's periodic GC).
    pub fn gc(&mut self, now: Instant) {
        let max = self.max;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_update) <= 2 * max);
    }

    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_to_the_cap() {
        let mut b = Backoff::container();
        let mut got = Vec::new();
        for _ in 0..8 {
            got.push(b.next("c", Instant::now()).as_secs());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_counts_from_the_event() {
        let mut b = Backoff::container();
        let t0 = Instant::now();
        assert_eq!(b.remaining("c", t0, t0), None);
        b.next("c", t0);
        assert_eq!(b.remaining("c", t0, t0), Some(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            b.remaining("c", t0, Instant::now()),
            Some(Duration::from_secs(6))
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(b.remaining("c", t0, Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn resets_after_ten_quiet_minutes() {
        let mut b = Backoff::container();
        for _ in 0..4 {
            b.next("c", Instant::now());
        }
        assert_eq!(b.current("c"), Some(Duration::from_secs(80)));
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(b.next("c", Instant::now()), Duration::from_secs(160));
        tokio::time::advance(Duration::from_secs(601)).await;
        assert_eq!(b.next("c", Instant::now()), Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(601)).await;
        b.gc(Instant::now());
        assert_eq!(b.current("c"), None);
    }
}
