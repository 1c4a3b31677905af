//! Client-side request rate limiting, as client-go's token bucket behind --kube-api-qps and
//! --kube-api-burst.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// --kube-api-qps and --kube-api-burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiRateLimit {
    /// Requests per second; 0 takes client-go's default (5), a negative value turns the
    /// limit off.
    pub qps: f32,
    /// Requests allowed at once above the steady rate; 0 takes client-go's default (10).
    pub burst: u32,
}

impl Default for ApiRateLimit {
    /// The kubelet's defaults: 50 requests per second, bursts of 100.
    fn default() -> Self {
        ApiRateLimit {
            qps: 50.0,
            burst: 100,
        }
    }
}

impl ApiRateLimit {
    /// The effective (qps, burst), or None when unlimited.
    fn effective(self) -> Option<(f64, f64)> {
        if self.qps < 0.0 {
            return None;
        }
        let qps = if self.qps == 0.0 {
            5.0
        } else {
            f64::from(self.qps)
        };
        let burst = if self.burst == 0 { 10 } else { self.burst };
        Some((qps, f64::from(burst)))
    }
}

#[derive(Debug, Clone)]
struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(qps: f64, burst: f64) -> Self {
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// A tower layer that holds requests back to the configured rate.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitLayer {
    limit: ApiRateLimit,
}

impl RateLimitLayer {
    pub fn new(limit: ApiRateLimit) -> Self {
        RateLimitLayer { limit }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: self
                .limit
                .effective()
                .map(|(qps, burst)| TokenBucket::new(qps, burst)),
            wait: None,
            has_token: false,
        }
    }
}

pub struct RateLimit<S> {
    inner: S,
    /// None when unlimited.
    bucket: Option<TokenBucket>,
    wait: Option<Pin<Box<Sleep>>>,
    /// A token was taken in poll_ready for the next call.
    has_token: bool,
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(bucket) = &mut self.bucket {
            while !self.has_token {
                if let Some(wait) = &mut self.wait {
                    if wait.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.wait = None;
                }
                match bucket.take(Instant::now()) {
                    Ok(()) => self.has_token = true,
                    Err(delay) => self.wait = Some(Box::pin(tokio::time::sleep(delay))),
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.has_token = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    async fn elapsed_for(limit: ApiRateLimit, requests: usize) -> Duration {
        let mut service = RateLimitLayer::new(limit)
            .layer(tower::service_fn(|()| async { Ok::<_, Infallible>(()) }));
        let start = Instant::now();
        for _ in 0..requests {
            service
                .ready()
                .await
                .expect("ready")
                .call(())
                .await
                .expect("answered");
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_the_rate_holds() {
        let limit = ApiRateLimit { qps: 2.0, burst: 3 };
        assert_eq!(elapsed_for(limit, 3).await, Duration::ZERO);
        let elapsed = elapsed_for(limit, 7).await;
        // Three at once, then four more at two per second.
        assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(2100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_negative_qps_is_unlimited() {
        let limit = ApiRateLimit {
            qps: -1.0,
            burst: 0,
        };
        assert_eq!(elapsed_for(limit, 1000).await, Duration::ZERO);
    }

    #[test]
    fn zero_takes_client_go_defaults() {
        let limit = ApiRateLimit { qps: 0.0, burst: 0 };
        assert_eq!(limit.effective(), Some((5.0, 10.0)));
    }
}
