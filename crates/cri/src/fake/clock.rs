//! Timestamps in CRI's unit (nanoseconds since the Unix epoch) that follow tokio's clock, so a
//! test with paused time sees timestamps move exactly as far as it advances time.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    wall_at_base_ns: i64,
    base: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the system clock is after 1970");
        Clock {
            wall_at_base_ns: i64::try_from(wall.as_nanos()).expect("nanoseconds fit in i64"),
            base: Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// The CRI timestamp of a tokio instant.
    pub fn nanos_at(&self, instant: Instant) -> i64 {
        let since_base = instant.saturating_duration_since(self.base).as_nanos();
        self.wall_at_base_ns + i64::try_from(since_base).expect("nanoseconds fit in i64")
    }

    pub fn now_nanos(&self) -> i64 {
        self.nanos_at(self.now())
    }
}
