//! client-go's EventCorrelator (tools/record/events_cache.go): similar events are aggregated,
//! repeats become a count on the first event, and a token bucket per source and object drops
//! floods. Pure state: the caller passes the clocks in.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use lru::LruCache;
use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::time::Duration;
use tokio::time::Instant;

/// Entries each cache keeps (client-go maxLruCacheEntries).
pub const LRU_CACHE_SIZE: usize = 4096;
/// Distinct messages of one reason about one object before they are combined.
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// The window in which similar events count towards aggregation.
pub const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// Events a source may record about one object at once.
pub const SPAM_BURST: f64 = 25.0;
/// Refill of the spam bucket: one event per five minutes.
pub const SPAM_QPS: f64 = 1.0 / 300.0;
const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// What to write: the event to create, or with `patch` the change to an existing one.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlated {
    pub event: Event,
    /// A strategic merge patch of count, lastTimestamp and message, for an event seen before.
    pub patch: Option<serde_json::Value>,
}

struct AggregateRecord {
    messages: HashSet<String>,
    last: Instant,
}

/// What the server holds for an event key (client-go eventLog).
#[derive(Clone)]
struct EventLog {
    count: i32,
    first_timestamp: Option<Time>,
    name: String,
    resource_version: Option<String>,
}

/// A passive token bucket, full at the start (client-go NewTokenBucketPassiveRateLimiter).
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn try_accept(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * SPAM_QPS).min(SPAM_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub struct Correlator {
    aggregates: LruCache<String, AggregateRecord>,
    observed: LruCache<String, EventLog>,
    spam: LruCache<String, TokenBucket>,
}

impl Default for Correlator {
    fn default() -> Self {
        Self::new()
    }
}

fn source(e: &Event) -> [&str; 2] {
    let s = e.source.as_ref();
    [
        s.and_then(|s| s.component.as_deref()).unwrap_or(""),
        s.and_then(|s| s.host.as_deref()).unwrap_or(""),
    ]
}

/// The involved object's kind, namespace, name, uid and apiVersion.
fn object(e: &Event) -> [&str; 5] {
    let o = &e.involved_object;
    [
        o.kind.as_deref().unwrap_or(""),
        o.namespace.as_deref().unwrap_or(""),
        o.name.as_deref().unwrap_or(""),
        o.uid.as_deref().unwrap_or(""),
        o.api_version.as_deref().unwrap_or(""),
    ]
}

fn text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// client-go getEventKey: source, object (with field path), type, reason and message.
pub fn event_key(e: &Event) -> String {
    let [kind, ns, name, uid, api] = object(e);
    let field_path = text(&e.involved_object.field_path);
    let mut parts = source(e).to_vec();
    parts.extend([kind, ns, name, field_path, uid, api]);
    parts.extend([text(&e.type_), text(&e.reason), text(&e.message)]);
    parts.concat()
}

/// client-go getSpamKey: source and object.
fn spam_key(e: &Event) -> String {
    let mut parts = source(e).to_vec();
    parts.extend(object(e));
    parts.concat()
}

/// client-go EventAggregatorByReasonFunc: (source, object, type, reason, reporter) and message.
fn aggregate_key(e: &Event) -> (String, String) {
    let mut parts = source(e).to_vec();
    parts.extend(object(e));
    parts.extend([
        text(&e.type_),
        text(&e.reason),
        text(&e.reporting_component),
        text(&e.reporting_instance),
    ]);
    (parts.concat(), text(&e.message).to_string())
}

/// The recorder's event name (client-go GenerateEventName): the object's name and the time in
/// hex nanoseconds, or a random UUID when that is not a valid object name.
pub fn event_name(object_name: &str, at: Timestamp) -> String {
    let name = format!("{object_name}.{:x}", at.as_nanosecond());
    if is_dns_subdomain(&name) {
        return name;
    }
    let hex: String = (0..32)
        .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-4{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// An RFC 1123 subdomain: at most 253 characters, dot-separated labels of lowercase letters,
/// digits and dashes that start and end with a letter or digit.
fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 253
        && name.split('.').all(|label| {
            label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

impl Correlator {
    pub fn new() -> Self {
        let size = NonZeroUsize::new(LRU_CACHE_SIZE).expect("non-zero cache size");
        Self {
            aggregates: LruCache::new(size),
            observed: LruCache::new(size),
            spam: LruCache::new(size),
        }
    }

    /// client-go EventCorrelate: the write `event` calls for, or `None` when the spam filter
    /// drops it. `now` drives the windows and the bucket; `wall` names and stamps an aggregate.
    pub fn correlate(&mut self, event: Event, now: Instant, wall: Timestamp) -> Option<Correlated> {
        let (event, key) = self.aggregate(event, now, wall);
        let observed = self.observe(event, &key);
        let bucket = self
            .spam
            .get_or_insert_mut(spam_key(&observed.event), || TokenBucket {
                tokens: SPAM_BURST,
                last: now,
            });
        bucket.try_accept(now).then_some(observed)
    }

    /// Past the distinct-message threshold, the event becomes the object's combined event,
    /// keyed by the aggregate key so that its later occurrences update it.
    fn aggregate(&mut self, event: Event, now: Instant, wall: Timestamp) -> (Event, String) {
        let (aggregate_key, message) = aggregate_key(&event);
        let record = self
            .aggregates
            .get_or_insert_mut(aggregate_key.clone(), || AggregateRecord {
                messages: HashSet::new(),
                last: now,
            });
        if now.saturating_duration_since(record.last) > AGGREGATE_INTERVAL {
            record.messages.clear();
        }
        record.messages.insert(message);
        record.last = now;
        if record.messages.len() < AGGREGATE_MAX_EVENTS {
            let key = event_key(&event);
            return (event, key);
        }
        // Keep the set at the threshold: every further similar event stays combined.
        if let Some(any) = record.messages.iter().next().cloned() {
            record.messages.remove(&any);
        }
        let time = Time(wall);
        let name = text(&event.involved_object.name).to_string();
        let combined = Event {
            metadata: ObjectMeta {
                name: Some(event_name(&name, wall)),
                namespace: event.metadata.namespace.clone(),
                ..ObjectMeta::default()
            },
            count: Some(1),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            message: Some(format!("{COMBINED_PREFIX}{}", text(&event.message))),
            involved_object: event.involved_object,
            type_: event.type_,
            reason: event.reason,
            source: event.source,
            ..Event::default()
        };
        (combined, aggregate_key)
    }

    /// client-go eventObserve: an event seen before under `key` takes the stored name,
    /// resourceVersion and first timestamp, with the count one higher and a patch to match.
    fn observe(&mut self, mut event: Event, key: &str) -> Correlated {
        let mut patch = None;
        if let Some(last) = self.observed.get(key).filter(|l| l.count > 0) {
            event.metadata.name = Some(last.name.clone());
            event.metadata.resource_version = last.resource_version.clone();
            event.first_timestamp = last.first_timestamp.clone();
            event.count = Some(last.count + 1);
            patch = Some(serde_json::json!({
                "count": event.count,
                "lastTimestamp": event.last_timestamp,
                "message": event.message,
            }));
        }
        self.observed.put(key.to_string(), log_of(&event));
        Correlated { event, patch }
    }

    /// client-go UpdateState: remember what the server returned (its name and resourceVersion).
    pub fn update_state(&mut self, written: &Event) {
        self.observed.put(event_key(written), log_of(written));
    }
}

fn log_of(e: &Event) -> EventLog {
    EventLog {
        count: e.count.unwrap_or(1),
        first_timestamp: e.first_timestamp.clone(),
        name: e.metadata.name.clone().unwrap_or_default(),
        resource_version: e.metadata.resource_version.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};

    fn event(object: &str, reason: &str, message: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.1")),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some(object.into()),
                namespace: Some("default".into()),
                uid: Some(format!("{object}-uid")),
                api_version: Some("v1".into()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some("Warning".into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("node-a".into()),
            }),
            count: Some(1),
            ..Event::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_event_is_created_and_repeats_patch_the_count() {
        let mut c = Correlator::new();
        let first = c
            .correlate(
                event("p", "BackOff", "m"),
                Instant::now(),
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        assert!(first.patch.is_none());
        assert_eq!(first.event.count, Some(1));
        let mut written = first.event.clone();
        written.metadata.resource_version = Some("42".into());
        c.update_state(&written);
        let again = c
            .correlate(
                event("p", "BackOff", "m"),
                Instant::now(),
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        assert_eq!(again.event.count, Some(2));
        assert_eq!(again.event.metadata.name.as_deref(), Some("p.1"));
        assert_eq!(again.event.metadata.resource_version.as_deref(), Some("42"));
        let patch = again.patch.unwrap();
        assert_eq!(patch["count"], 2);
        assert_eq!(patch["message"], "m");
        let third = c
            .correlate(
                event("p", "BackOff", "m"),
                Instant::now(),
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        assert_eq!(third.event.count, Some(3));
        // Another message is another event.
        let other = c
            .correlate(
                event("p", "BackOff", "n"),
                Instant::now(),
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        assert!(other.patch.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_tenth_distinct_message_is_combined() {
        let mut c = Correlator::new();
        let wall = Timestamp::from_second(1_700_000_000).unwrap();
        for i in 0..9 {
            let r = c
                .correlate(event("p", "Failed", &format!("m{i}")), Instant::now(), wall)
                .unwrap();
            assert_eq!(r.event.message.as_deref(), Some(format!("m{i}").as_str()));
        }
        let combined = c
            .correlate(event("p", "Failed", "m9"), Instant::now(), wall)
            .unwrap();
        assert_eq!(
            combined.event.message.as_deref(),
            Some("(combined from similar events): m9")
        );
        assert_eq!(combined.event.count, Some(1));
        assert_eq!(combined.event.metadata.name, Some(event_name("p", wall)));
        assert!(combined.patch.is_none());
        // The next similar event updates the combined one.
        let next = c
            .correlate(event("p", "Failed", "m10"), Instant::now(), wall)
            .unwrap();
        assert_eq!(next.event.count, Some(2));
        assert_eq!(next.event.metadata.name, combined.event.metadata.name);
        assert_eq!(
            next.patch.unwrap()["message"],
            "(combined from similar events): m10"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_aggregation_window_expires() {
        let mut c = Correlator::new();
        for i in 0..9 {
            c.correlate(
                event("p", "Failed", &format!("m{i}")),
                Instant::now(),
                Timestamp::UNIX_EPOCH,
            );
        }
        tokio::time::advance(AGGREGATE_INTERVAL + Duration::from_secs(1)).await;
        let r = c
            .correlate(
                event("p", "Failed", "m9"),
                Instant::now(),
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        assert_eq!(r.event.message.as_deref(), Some("m9"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_spam_filter_allows_a_burst_then_one_per_five_minutes() {
        let mut c = Correlator::new();
        let pass = |c: &mut Correlator, object: &str| {
            c.correlate(
                event(object, "BackOff", "m"),
                Instant::now(),
                Timestamp::UNIX_EPOCH,
            )
            .is_some()
        };
        let accepted = (0..100).filter(|_| pass(&mut c, "p")).count();
        assert_eq!(accepted, 25);
        // Another object has its own bucket.
        assert!(pass(&mut c, "q"));
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(!pass(&mut c, "p"));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(pass(&mut c, "p"));
        assert!(!pass(&mut c, "p"));
    }

    #[test]
    fn event_names() {
        let at = Timestamp::from_nanosecond(255).unwrap();
        assert_eq!(event_name("web", at), "web.ff");
        for bad in ["Web", &"a".repeat(260), "-web"] {
            let name = event_name(bad, at);
            assert_eq!(name.len(), 36, "{name}");
            assert!(is_dns_subdomain(&name), "{name}");
        }
    }

    #[test]
    fn keys_follow_client_go() {
        let e = event("p", "BackOff", "m");
        assert_eq!(
            event_key(&e),
            "kubeletnode-aPoddefaultpp-uidv1WarningBackOffm"
        );
        assert_eq!(spam_key(&e), "kubeletnode-aPoddefaultpp-uidv1");
        assert_eq!(
            aggregate_key(&e),
            (
                "kubeletnode-aPoddefaultpp-uidv1WarningBackOff".to_string(),
                "m".to_string()
            )
        );
    }
}
