//! Service account tokens for a pod (upstream's pkg/kubelet/token), for projected
//! serviceAccountToken volumes and for CSI drivers whose CSIDriver asks for tokens: requested
//! through the TokenRequest API bound to the pod, kept in memory per pod, and requested again
//! only when older than 80% of their lifetime or than 24 hours.

use crate::error::SetupError;
use k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest, TokenRequestSpec, TokenRequestStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kubelet_objects::ObjectSource;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

/// What the API server defaults `expirationSeconds` to.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// A token is replaced once this old, whatever its lifetime.
const MAX_TTL: SignedDuration = SignedDuration::from_hours(24);
/// Spreads the refreshes of many pods that started together.
const MAX_JITTER_SECONDS: u64 = 10;

/// upstream's requiresRefresh: a token issued `expiration_seconds` before `expiry` is due once
/// it is older than 24 hours, or has less than 20% of its lifetime left; `jitter` brings both
/// moments forward.
pub(crate) fn requires_refresh(
    now: Timestamp,
    expiry: Timestamp,
    expiration_seconds: i64,
    jitter: SignedDuration,
) -> bool {
    let lifetime = SignedDuration::from_secs(expiration_seconds);
    let issued = expiry - lifetime;
    if now > issued + (MAX_TTL - jitter) {
        return true;
    }
    let margin = SignedDuration::from_secs(expiration_seconds * 20 / 100);
    now > expiry - margin - jitter
}

fn random_jitter() -> SignedDuration {
    let seconds = RandomState::new().hash_one(0u8) % MAX_JITTER_SECONDS;
    SignedDuration::from_secs(seconds as i64)
}

/// The tokens each pod holds, by what was asked for; one cache serves every user of a pod's
/// tokens, as upstream's token manager does.
#[derive(Debug, Default)]
pub struct TokenCache {
    pods: Mutex<HashMap<String, HashMap<Key, TokenRequest>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    service_account: String,
    audience: Option<String>,
    expiration_seconds: i64,
}

impl TokenCache {
    /// A token of the pod's service account for `audience` (None or empty: the API server's
    /// own) lasting `expiration_seconds` (None: the API's default), with its expiry: the cached
    /// one while it is fresh, else a new one. A failed refresh keeps serving the cached token
    /// until it expires.
    pub async fn token(
        &self,
        objects: &dyn ObjectSource,
        pod: &Pod,
        audience: Option<&str>,
        expiration_seconds: Option<i64>,
        now: Timestamp,
    ) -> Result<TokenRequestStatus, SetupError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let spec = pod.spec.as_ref();
        let service_account = spec
            .and_then(|s| {
                s.service_account_name
                    .as_deref()
                    .or(s.service_account.as_deref())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        let key = Key {
            service_account: service_account.to_owned(),
            audience: audience.filter(|a| !a.is_empty()).map(str::to_owned),
            expiration_seconds: expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        };
        let cached = self.cached(&uid, &key);
        if let Some((status, seconds)) = &cached
            && !requires_refresh(
                now,
                status.expiration_timestamp.0,
                *seconds,
                random_jitter(),
            )
        {
            return Ok(status.clone());
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: key.audience.iter().cloned().collect(),
                expiration_seconds: Some(key.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let answer = objects
            .service_account_token(namespace, service_account, request)
            .await
            .map_err(SetupError::from)
            .and_then(|tr| match tr.status.clone() {
                Some(status) if !status.token.is_empty() => Ok((tr, status)),
                _ => Err(SetupError::NoToken),
            });
        match (answer, cached) {
            (Ok((tr, status)), _) => {
                self.pods
                    .lock()
                    .unwrap()
                    .entry(uid)
                    .or_default()
                    .insert(key, tr);
                tracing::debug!(namespace, service_account, "service account token issued");
                Ok(status)
            }
            (Err(e), None) => Err(SetupError::TokenFetch(Box::new(e))),
            (Err(e), Some((status, _))) if now > status.expiration_timestamp.0 => {
                Err(SetupError::TokenExpired(Box::new(e)))
            }
            (Err(error), Some((status, _))) => {
                tracing::warn!(namespace, service_account, %error, "couldn't update token");
                Ok(status)
            }
        }
    }

    /// (token and expiry, lifetime in seconds) of the cached token. The lifetime is what the
    /// server granted, which may differ from what was asked.
    fn cached(&self, uid: &str, key: &Key) -> Option<(TokenRequestStatus, i64)> {
        let pods = self.pods.lock().unwrap();
        let tr = pods.get(uid)?.get(key)?;
        let seconds = tr.spec.expiration_seconds.unwrap_or(key.expiration_seconds);
        Some((tr.status.clone()?, seconds))
    }

    pub fn forget_pod(&self, uid: &str) {
        self.pods.lock().unwrap().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kubelet_objects::{FakeObjects, NoApi};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn refresh_after_80_percent_of_the_lifetime() {
        let expiry = at(3600);
        let zero = SignedDuration::ZERO;
        assert!(!requires_refresh(at(0), expiry, 3600, zero));
        assert!(!requires_refresh(at(2880), expiry, 3600, zero));
        assert!(requires_refresh(at(2881), expiry, 3600, zero));
        // The jitter brings the refresh forward.
        assert!(requires_refresh(
            at(2871),
            expiry,
            3600,
            SignedDuration::from_secs(10)
        ));
    }

    #[test]
    fn refresh_after_24_hours_for_long_lived_tokens() {
        let week = 7 * 24 * 3600;
        let expiry = at(week);
        let zero = SignedDuration::ZERO;
        assert!(!requires_refresh(at(24 * 3600), expiry, week, zero));
        assert!(requires_refresh(at(24 * 3600 + 1), expiry, week, zero));
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("robot".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    const AUDIENCE: Option<&str> = Some("vault");

    #[tokio::test]
    async fn cached_until_due_then_refreshed_and_forgotten_with_the_pod() {
        let objects = FakeObjects::default();
        let cache = TokenCache::default();
        let now = Timestamp::now();
        let first = cache
            .token(&objects, &pod(), AUDIENCE, None, now)
            .await
            .unwrap()
            .token;
        assert_eq!(first, "token-1-prod-robot");
        let half = now + SignedDuration::from_secs(1800);
        assert_eq!(
            cache
                .token(&objects, &pod(), AUDIENCE, None, half)
                .await
                .unwrap()
                .token,
            first
        );
        assert_eq!(objects.tokens_issued(), 1);

        let late = now + SignedDuration::from_secs(2900);
        let second = cache
            .token(&objects, &pod(), AUDIENCE, None, late)
            .await
            .unwrap()
            .token;
        assert_eq!(second, "token-2-prod-robot");
        assert_eq!(objects.tokens_issued(), 2);

        // Another lifetime is another token.
        let other = cache
            .token(&objects, &pod(), AUDIENCE, Some(7200), late)
            .await
            .unwrap()
            .token;
        assert_eq!(other, "token-3-prod-robot");

        cache.forget_pod("u-1");
        cache
            .token(&objects, &pod(), AUDIENCE, None, late)
            .await
            .unwrap();
        assert_eq!(objects.tokens_issued(), 4);
    }

    #[tokio::test]
    async fn a_failed_refresh_serves_the_cached_token_until_it_expires() {
        let cache = TokenCache::default();
        let now = Timestamp::now();
        let first = cache
            .token(&FakeObjects::default(), &pod(), AUDIENCE, None, now)
            .await
            .unwrap();
        let due = now + SignedDuration::from_secs(3000);
        assert_eq!(
            cache
                .token(&NoApi, &pod(), AUDIENCE, None, due)
                .await
                .unwrap(),
            first
        );
        let expired = now + SignedDuration::from_secs(3700);
        let err = cache
            .token(&NoApi, &pod(), AUDIENCE, None, expired)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("token expired and refresh failed: "),
            "{err}"
        );
        let fresh = TokenCache::default();
        assert_eq!(
            fresh
                .token(&NoApi, &pod(), AUDIENCE, None, now)
                .await
                .unwrap_err()
                .to_string(),
            "failed to fetch token: couldn't get serviceaccount token prod/robot, no kubeClient defined"
        );
    }

    #[tokio::test]
    async fn the_request_is_bound_to_the_pod() {
        let objects = FakeObjects::default();
        let cache = TokenCache::default();
        cache
            .token(&objects, &pod(), AUDIENCE, Some(600), Timestamp::now())
            .await
            .unwrap();
        let pods = cache.pods.lock().unwrap();
        let tr = pods["u-1"].values().next().unwrap();
        assert_eq!(tr.spec.audiences, ["vault"]);
        assert_eq!(tr.spec.expiration_seconds, Some(600));
        let bound = tr.spec.bound_object_ref.as_ref().unwrap();
        assert_eq!(bound.kind.as_deref(), Some("Pod"));
        assert_eq!(bound.api_version.as_deref(), Some("v1"));
        assert_eq!(bound.name.as_deref(), Some("web"));
        assert_eq!(bound.uid.as_deref(), Some("u-1"));
    }
}
