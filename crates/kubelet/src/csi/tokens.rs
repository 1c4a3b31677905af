//! Service account tokens for drivers whose CSIDriver lists spec.tokenRequests (upstream's
//! podServiceAccountTokenAttrs): one token of the pod's service account per audience, bound to
//! the pod, passed in NodePublishVolume's volume context as JSON keyed by audience.

use k8s_openapi::api::authentication::v1::TokenRequestStatus;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::storage::v1::CSIDriverSpec;
use k8s_openapi::jiff::Timestamp;
use kubelet_objects::ObjectSource;
use kubelet_volumes::TokenCache;
use std::collections::BTreeMap;

/// The volume context key the tokens go in.
pub(super) const TOKENS_KEY: &str = "csi.storage.k8s.io/serviceAccount.tokens";

/// `{"AUDIENCE":{"token":"…","expirationTimestamp":"RFC 3339"}}`; the empty audience stands for
/// the API server's own.
pub(super) fn tokens_json(tokens: &BTreeMap<String, TokenRequestStatus>) -> String {
    serde_json::to_string(tokens).expect("token statuses serialize")
}

/// The volume context entry for the driver's token requests, None when it asks for none.
pub(super) async fn token_context(
    cache: &TokenCache,
    objects: &dyn ObjectSource,
    pod: &Pod,
    driver: &CSIDriverSpec,
) -> Result<Option<(String, String)>, String> {
    let requests = driver.token_requests.as_deref().unwrap_or_default();
    if requests.is_empty() {
        return Ok(None);
    }
    let now = Timestamp::now();
    let mut tokens = BTreeMap::new();
    for request in requests {
        let issued = cache
            .token(
                objects,
                pod,
                Some(&request.audience),
                request.expiration_seconds,
                now,
            )
            .await
            .map_err(|e| {
                super::log(&format!(
                    "mounter.SetUpAt failed to get service account token attributes: audience {:?}: {e}",
                    request.audience
                ))
            })?;
        tokens.insert(request.audience.clone(), issued);
    }
    Ok(Some((TOKENS_KEY.to_string(), tokens_json(&tokens))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::storage::v1::TokenRequest;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kubelet_objects::FakeObjects;

    #[test]
    fn the_json_is_upstreams_shape() {
        let status = |token: &str| TokenRequestStatus {
            token: token.into(),
            expiration_timestamp: Time("2026-12-08T01:02:03Z".parse().unwrap()),
        };
        let tokens = BTreeMap::from([
            (String::new(), status("t0")),
            ("vault".to_string(), status("t1")),
        ]);
        let parsed: serde_json::Value = serde_json::from_str(&tokens_json(&tokens)).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "": {"token": "t0", "expirationTimestamp": "2026-12-08T01:02:03Z"},
                "vault": {"token": "t1", "expirationTimestamp": "2026-12-08T01:02:03Z"},
            })
        );
    }

    #[tokio::test]
    async fn one_token_per_audience_and_none_without_requests() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"containers": [], "serviceAccountName": "sa"},
        }))
        .unwrap();
        let objects = FakeObjects::default();
        let cache = TokenCache::default();
        let none = CSIDriverSpec::default();
        assert_eq!(
            token_context(&cache, &objects, &pod, &none).await.unwrap(),
            None
        );
        let driver = CSIDriverSpec {
            token_requests: Some(vec![
                TokenRequest {
                    audience: "vault".into(),
                    expiration_seconds: Some(3600),
                },
                TokenRequest {
                    audience: String::new(),
                    expiration_seconds: None,
                },
            ]),
            ..Default::default()
        };
        let (key, value) = token_context(&cache, &objects, &pod, &driver)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key, TOKENS_KEY);
        let parsed: serde_json::Value = serde_json::from_str(&value).unwrap();
        let audiences: Vec<&String> = parsed.as_object().unwrap().keys().collect();
        assert_eq!(audiences, ["", "vault"]);
        assert!(
            parsed["vault"]["token"]
                .as_str()
                .unwrap()
                .ends_with("-ns-sa")
        );
        assert!(parsed[""]["expirationTimestamp"].is_string());
        assert_eq!(objects.tokens_issued(), 2);
    }
}
