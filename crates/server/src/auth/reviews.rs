//! TokenReview and SubjectAccessReview through the API server, retried on transient failures
//! with upstream's webhook backoff (DefaultAuthWebhookRetryBackoff: 500ms, factor 1.5, 5 steps).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::authorization::v1::{
    SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::{Api, PostParams};

use super::{AccessReviewer, ReviewError, TokenReviewer};

/// The reviewers the webhook modes ask; [`Reviews::from_client`] for the API server's.
#[derive(Clone)]
pub struct Reviews {
    pub tokens: Arc<dyn TokenReviewer>,
    pub access: Arc<dyn AccessReviewer>,
}

impl std::fmt::Debug for Reviews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reviews")
    }
}

impl Reviews {
    /// Both reviews posted to the API server `client` talks to.
    pub fn from_client(client: kube::Client) -> Reviews {
        let api = Arc::new(ApiReviews { client });
        Reviews {
            tokens: api.clone(),
            access: api,
        }
    }
}

struct ApiReviews {
    client: kube::Client,
}

const RETRY_STEPS: u32 = 5;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Connection failures, throttling and server errors may pass; anything else is an answer.
fn retriable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = FIRST_RETRY_DELAY;
    let mut step = 1;
    loop {
        match call().await {
            Err(error) if step < RETRY_STEPS && retriable(&error) => {
                tracing::debug!(%error, step, "review failed, retrying");
                tokio::time::sleep(delay).await;
                delay = delay * 3 / 2;
                step += 1;
            }
            outcome => return outcome,
        }
    }
}

#[async_trait::async_trait]
impl TokenReviewer for ApiReviews {
    async fn review_token(&self, token: &str) -> Result<TokenReviewStatus, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..Default::default()
        };
        let api = Api::<TokenReview>::all(self.client.clone());
        let params = PostParams::default();
        let reviewed = with_retries(|| api.create(&params, &review))
            .await
            .map_err(|e| ReviewError(format!("TokenReview: {e}")))?;
        Ok(reviewed.status.unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl AccessReviewer for ApiReviews {
    async fn review_access(
        &self,
        spec: &SubjectAccessReviewSpec,
    ) -> Result<SubjectAccessReviewStatus, ReviewError> {
        let review = SubjectAccessReview {
            spec: spec.clone(),
            ..Default::default()
        };
        let api = Api::<SubjectAccessReview>::all(self.client.clone());
        let params = PostParams::default();
        let reviewed = with_retries(|| api.create(&params, &review))
            .await
            .map_err(|e| ReviewError(format!("SubjectAccessReview: {e}")))?;
        Ok(reviewed.status.unwrap_or_default())
    }
}
