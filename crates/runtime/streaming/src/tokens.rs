//! The request cache behind the streaming URLs (upstream streaming/request_cache.go): each CRI
//! Exec/Attach/PortForward call stores its request under a random single-use token that
//! expires after a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use tokio::time::Instant;

pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Upstream's cap on requests waiting for their client.
pub const MAX_IN_FLIGHT: usize = 1000;
const TOKEN_BYTES: usize = 8;

#[derive(Clone, Debug, PartialEq)]
pub enum CachedRequest {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    #[error("maximum number of in-flight requests exceeded")]
    Full,
    #[error("no randomness for a token: {0}")]
    Random(String),
}

#[derive(Default)]
pub struct RequestCache {
    entries: Mutex<HashMap<String, (Instant, CachedRequest)>>,
}

impl RequestCache {
    pub fn insert(&self, request: CachedRequest) -> Result<String, CacheError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        entries.retain(|_, (expires, _)| *expires > now);
        if entries.len() >= MAX_IN_FLIGHT {
            return Err(CacheError::Full);
        }
        let token = loop {
            let mut raw = [0u8; TOKEN_BYTES];
            getrandom::fill(&mut raw).map_err(|e| CacheError::Random(e.to_string()))?;
            let token = URL_SAFE_NO_PAD.encode(raw);
            if !entries.contains_key(&token) {
                break token;
            }
        };
        entries.insert(token.clone(), (now + TOKEN_TTL, request));
        Ok(token)
    }

    /// Takes the request for `token`: each token works once, and not after it expired.
    pub fn consume(&self, token: &str) -> Option<CachedRequest> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (expires, request) = entries.remove(token)?;
        (expires > Instant::now()).then_some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> CachedRequest {
        CachedRequest::Exec(ExecRequest {
            container_id: "c".into(),
            ..Default::default()
        })
    }

    #[test]
    fn tokens_are_single_use_and_distinct() {
        let cache = RequestCache::default();
        let a = cache.insert(exec()).unwrap();
        let b = cache.insert(exec()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 11);
        assert_eq!(cache.consume(&a), Some(exec()));
        assert_eq!(cache.consume(&a), None);
        assert_eq!(cache.consume("unknown"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_expire_after_a_minute() {
        let cache = RequestCache::default();
        let token = cache.insert(exec()).unwrap();
        tokio::time::advance(TOKEN_TTL).await;
        assert_eq!(cache.consume(&token), None);
    }

    #[test]
    fn in_flight_requests_are_capped() {
        let cache = RequestCache::default();
        for _ in 0..MAX_IN_FLIGHT {
            cache.insert(exec()).unwrap();
        }
        assert_eq!(cache.insert(exec()), Err(CacheError::Full));
    }
}
