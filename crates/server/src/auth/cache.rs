//! The TTL caches of review verdicts (upstream's cached token authenticator and the webhook
//! authorizer's decision cache). Time is tokio's, so tests run it on paused time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Past this many entries, expired ones are dropped on insert.
const PRUNE_AT: usize = 4096;

pub(crate) struct TtlCache<V> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub(crate) fn new() -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap();
        let (expires, value) = entries.get(key)?;
        (Instant::now() < *expires).then(|| value.clone())
    }

    /// A zero TTL caches nothing, as upstream's.
    pub(crate) fn insert(&self, key: String, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap();
        if entries.len() >= PRUNE_AT {
            entries.retain(|_, (expires, _)| now < *expires);
        }
        entries.insert(key, (now + ttl, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        let cache = TtlCache::new();
        cache.insert("a".into(), 1, Duration::from_secs(10));
        cache.insert("b".into(), 2, Duration::ZERO);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(cache.get("a"), None);
    }
}
